//! The systems `hoard-bench fuse` reads: data files and a large directory in a local directory
//! (which is both hoard's under-store and the local-disk peer), one worker over it that can be
//! restarted with an empty cache for cold runs, two `hoard mount` processes (with and without the
//! kernel's page cache), a native client, and dropping the kernel's caches.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use hoard_client::Client;
use hoard_transport::cluster::ClusterConfig;
use rand::{RngCore, SeedableRng};

use super::cpu::CpuSample;
use crate::cli::FusePlan;
use crate::procs::{ChildGuard, free_addr, tail};

/// The hoard mount the files live in.
pub const MOUNT: &str = "bench";
/// The directory (in the mount and on disk) of the data files.
pub const DATA_DIR: &str = "data";
/// The directory (in the mount and on disk) listed by the listing phase.
pub const LIST_DIR: &str = "list";

/// Everything the benchmark reads through, and the files themselves.
#[derive(Debug)]
pub struct Fixture {
    /// The mount with the kernel's page cache (the default mount).
    pub cached: MountProc,
    /// The mount with `--no-page-cache`: every read reaches hoard.
    pub direct: MountProc,
    /// A native client of the cluster.
    pub client: Client,
    /// The under-store directory: the files on local disk.
    pub ufs: PathBuf,
    /// The cluster config file.
    pub config_path: PathBuf,
    /// The data files, relative to the under-store directory and to the mounts.
    pub files: Vec<String>,
    /// Whether `/proc/sys/vm/drop_caches` can be written (cold runs need it).
    pub can_drop_caches: bool,
    worker: Option<ChildGuard>,
    worker_addr: SocketAddr,
    metrics_addr: SocketAddr,
    hoard_bin: PathBuf,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// Write the files and the directory, the config, start the worker and both mounts.
    ///
    /// # Errors
    /// When a step fails; a worker or mount that dies shows its log's tail.
    pub async fn start(plan: &FusePlan) -> anyhow::Result<Fixture> {
        let dir = tempfile::Builder::new()
            .prefix("hoard-bench-fuse-")
            .tempdir_in(&plan.dir)
            .with_context(|| format!("create a temporary directory in {}", plan.dir.display()))?;
        let root = dir.path().to_owned();
        let ufs = root.join("ufs");
        let (file_count, file_bytes, entries) = (plan.files, plan.file_bytes, plan.entries);
        let ufs_dir = ufs.clone();
        let files = tokio::task::spawn_blocking(move || write_tree(&ufs_dir, file_count, file_bytes, entries))
            .await
            .context("join the file writer")??;
        let (worker_addr, metrics_addr) = (free_addr()?, free_addr()?);
        let capacity = plan.files as u64 * plan.file_bytes;
        let text = cluster_toml(worker_addr, metrics_addr, &ufs, capacity);
        let config = ClusterConfig::parse(&text).context("check the generated cluster config")?;
        let config_path = root.join("cluster.toml");
        std::fs::write(&config_path, &text).context("write the cluster config")?;
        let hoard_bin = plan.hoard_bin.clone();
        let worker = spawn_worker(&hoard_bin, &config_path, &root, worker_addr).await?;
        let extra: Vec<&str> = plan.mount_args.iter().map(String::as_str).collect();
        let cached = MountProc::start(&hoard_bin, &config_path, &root.join("mnt-cached"), &extra).await?;
        let direct_args: Vec<&str> = extra.iter().copied().chain(["--no-page-cache"]).collect();
        let direct = MountProc::start(&hoard_bin, &config_path, &root.join("mnt-direct"), &direct_args).await?;
        let client = Client::builder()
            .cluster(config)
            .client_name("hoard-bench-fuse")
            .build()
            .context("build the client")?;
        Ok(Fixture {
            cached,
            direct,
            client,
            ufs,
            config_path,
            files,
            can_drop_caches: drop_caches().is_ok(),
            worker: Some(worker),
            worker_addr,
            metrics_addr,
            hoard_bin,
            root,
            _dir: dir,
        })
    }

    /// Kill the worker and start a new process: its page cache is then empty.
    ///
    /// # Errors
    /// When the new process does not listen within 30 s.
    pub async fn restart_worker(&mut self) -> anyhow::Result<()> {
        drop(self.worker.take());
        let worker = spawn_worker(&self.hoard_bin, &self.config_path, &self.root, self.worker_addr).await?;
        self.worker = Some(worker);
        Ok(())
    }

    /// Start every measurement from cold: a new worker process and no kernel caches.
    ///
    /// # Errors
    /// As [`Fixture::restart_worker`] and [`drop_caches`].
    pub async fn cold(&mut self) -> anyhow::Result<()> {
        self.restart_worker().await?;
        self.drop_caches()
    }

    /// Drop the kernel's page, dentry and inode caches, when this process may.
    ///
    /// # Errors
    /// When writing `/proc/sys/vm/drop_caches` fails although it worked at the start.
    pub fn drop_caches(&self) -> anyhow::Result<()> {
        if self.can_drop_caches {
            drop_caches()?;
        }
        Ok(())
    }

    /// Bytes of page data the worker has sent to clients so far (`worker_bytes_served`).
    ///
    /// # Errors
    /// When the metrics endpoint does not answer.
    pub async fn bytes_served(&self) -> anyhow::Result<f64> {
        let text = scrape(self.metrics_addr).await?;
        Ok(sum_metric(&text, "worker_bytes_served"))
    }

    /// CPU counters of the machine, the worker and both mounts, now.
    pub fn cpu_sample(&self) -> CpuSample {
        let worker = self.worker.as_ref().map(ChildGuard::pid);
        CpuSample::take(worker, &[self.cached.pid(), self.direct.pid()])
    }

    /// The worker's log, for error messages.
    pub fn worker_log(&self) -> String {
        self.worker.as_ref().map(ChildGuard::log_tail).unwrap_or_default()
    }
}

/// Start `hoard worker` (its log is `worker.log` in `root`) and wait until it listens.
async fn spawn_worker(hoard_bin: &Path, config: &Path, root: &Path, addr: SocketAddr) -> anyhow::Result<ChildGuard> {
    let mut command = Command::new(hoard_bin);
    command
        .args(["worker", "--id", "w1", "--cluster"])
        .arg(config)
        .env("HOARD_LOG", "warn");
    let mut worker = ChildGuard::spawn("hoard worker", command, &root.join("worker.log"))?;
    worker.wait_listening(addr, Duration::from_secs(30)).await?;
    Ok(worker)
}

/// The data files (`data/f<i>.bin`, random bytes) and `entries` empty files in `list/`.
fn write_tree(ufs: &Path, files: usize, file_bytes: u64, entries: usize) -> anyhow::Result<Vec<String>> {
    use std::io::Write;
    std::fs::create_dir_all(ufs.join(DATA_DIR)).context("create the data directory")?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6675_7365);
    let mut block = vec![0u8; 8 << 20];
    let mut names = Vec::with_capacity(files);
    for i in 0..files {
        let name = format!("{DATA_DIR}/f{i}.bin");
        let path = ufs.join(&name);
        let mut out = std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
        let mut left = file_bytes;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            rng.fill_bytes(&mut block[..n]);
            out.write_all(&block[..n]).context("write a data file")?;
            left -= n as u64;
        }
        names.push(name);
    }
    let list = ufs.join(LIST_DIR);
    std::fs::create_dir_all(&list).context("create the listed directory")?;
    for i in 0..entries {
        std::fs::File::create(list.join(format!("e{i:06}"))).context("create an entry")?;
    }
    Ok(names)
}

/// One worker with room for every file, one `file://` mount, defaults for everything else.
fn cluster_toml(addr: SocketAddr, metrics: SocketAddr, ufs: &Path, data_bytes: u64) -> String {
    let capacity_mib = (data_bytes + data_bytes / 2).div_ceil(1 << 20).max(256);
    let token = format!("hoard-bench-{}-{:016x}", std::process::id(), rand::random::<u64>());
    format!(
        "token = \"{token}\"\n\n[[workers]]\nid = \"w1\"\naddr = \"{addr}\"\nmetrics = \"{metrics}\"\n\
         memory_capacity = \"{capacity_mib}MiB\"\n\n[[mounts]]\nname = \"{MOUNT}\"\nufs = \"file://{}\"\n",
        ufs.display()
    )
}

/// `sync`, then drop the kernel's clean caches (as root).
///
/// # Errors
/// When `/proc/sys/vm/drop_caches` cannot be written (not root, or a container without it).
pub fn drop_caches() -> anyhow::Result<()> {
    let synced = Command::new("sync").status().context("run sync")?;
    ensure!(synced.success(), "sync failed: {synced}");
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").context("write /proc/sys/vm/drop_caches (needs root)")
}

/// A `hoard mount` process of the benchmark's mount at a new directory; unmounted (SIGTERM,
/// then a lazy unmount if it is still there) when dropped, on success, error and panic alike.
#[derive(Debug)]
pub struct MountProc {
    /// The mount point.
    pub path: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl MountProc {
    /// Mount at `path` (created) with `args`, and wait until the kernel lists the mount.
    ///
    /// # Errors
    /// When the process exits first or is not mounted within 30 s; the log's tail says why.
    pub async fn start(hoard_bin: &Path, config: &Path, path: &Path, args: &[&str]) -> anyhow::Result<MountProc> {
        std::fs::create_dir_all(path).with_context(|| format!("create {}", path.display()))?;
        let log = path.with_extension("log");
        let out = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new(hoard_bin)
            .arg("--cluster")
            .arg(config)
            .args(["--log", "warn", "mount"])
            .arg(path)
            .args(["--mount", MOUNT])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().context("duplicate a log handle")?)
            .stderr(out)
            .spawn()
            .context("start hoard mount")?;
        let mut mount = MountProc {
            path: path.to_owned(),
            log,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !is_fuse_mount(&mount.path) {
            if let Some(status) = mount.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                mount.child = None;
                bail!("hoard mount exited with {status}:\n{}", tail(&mount.log));
            }
            if Instant::now() > deadline {
                bail!("hoard mount did not mount within 30 s:\n{}", tail(&mount.log));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(mount)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A path inside the mount.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for MountProc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: the process unmounts and exits; SIGKILL if it has not within 10 s.
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if is_fuse_mount(&self.path) {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Whether a FUSE file system is mounted at `path` (`/proc/self/mountinfo`; the benchmark's
/// paths have no characters that mountinfo escapes).
fn is_fuse_mount(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = path.to_string_lossy();
    info.lines().any(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let fstype = fields.iter().position(|f| *f == "-").and_then(|d| fields.get(d + 1));
        fields.get(4) == Some(&target.as_ref()) && fstype.is_some_and(|t| t.starts_with("fuse"))
    })
}

/// The Prometheus text of a worker's metrics endpoint.
async fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .context("connect to the worker's metrics")?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .context("ask for the worker's metrics")?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut text))
        .await
        .context("read the worker's metrics: timed out")?
        .context("read the worker's metrics")?;
    Ok(text)
}

/// The sum of the samples of `name` (any labels) in Prometheus text.
fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_summed_over_labels_and_the_config_parses() {
        let text = "# HELP x\nworker_bytes_served{transport=\"tcp\"} 10\nworker_bytes_served_total 5\n\
                    worker_bytes_served{transport=\"shm\"} 2.5\n";
        assert_eq!(sum_metric(text, "worker_bytes_served"), 12.5);
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("an address");
        let text = cluster_toml(addr, addr, Path::new("/tmp/x"), 1 << 30);
        let config = ClusterConfig::parse(&text).expect("a valid config");
        assert_eq!(config.workers[0].memory_capacity.as_u64(), 1536 << 20);
        assert_eq!(config.mounts[0].name, MOUNT);
    }
}
