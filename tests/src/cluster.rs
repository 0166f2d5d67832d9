//! Real `hoard worker` processes on loopback ports, and the `hoard` binary for CLI tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hoard_client::Client;
use hoard_transport::cluster::{ClusterConfig, TransportChoice};

/// The `hoard` binary under test: `$HOARD_BIN`, else the workspace's `target/debug/hoard`.
///
/// # Panics
/// When it has not been built (`cargo build -p hoard-cli` first; `scripts/test.sh` does).
pub fn hoard_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("HOARD_BIN") {
        return PathBuf::from(bin);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let bin = target.join("debug/hoard");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p hoard-cli` first (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A free loopback port (bound then released; good enough for tests).
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr")
}

/// One worker process.
#[derive(Debug)]
pub struct WorkerProc {
    /// Its id.
    pub id: String,
    /// RPC address.
    pub addr: SocketAddr,
    /// Metrics address.
    pub metrics: SocketAddr,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
    /// The S3 gateway address its process serves, if it does.
    pub gateway: Option<SocketAddr>,
    child: Option<Child>,
}

/// One `[[mounts]]` entry of a test cluster.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Its name.
    pub name: String,
    /// Its under-store URI.
    pub uri: String,
    /// More keys of its table, as TOML lines (`write_mode = "back"`).
    pub settings: String,
}

impl Mount {
    /// A mount with default settings.
    pub fn new(name: &str, uri: &str) -> Mount {
        Mount {
            name: name.to_owned(),
            uri: uri.to_owned(),
            settings: String::new(),
        }
    }

    /// The mount with `write_mode` set (`through`, `back`, `cache-only`).
    pub fn write_mode(mut self, mode: &str) -> Mount {
        self.settings.push_str(&format!("write_mode = \"{mode}\"\n"));
        self
    }

    /// The mount with one more TOML line in its table.
    pub fn with(mut self, line: &str) -> Mount {
        self.settings.push_str(line);
        self.settings.push('\n');
        self
    }
}

/// A cluster of worker processes sharing one config file.
#[derive(Debug)]
pub struct Cluster {
    /// Temporary directory holding the config and logs.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config_path: PathBuf,
    /// The parsed config.
    pub config: ClusterConfig,
    /// The workers, in config order.
    pub workers: Vec<WorkerProc>,
}

/// What a test cluster is made of.
#[derive(Debug, Clone, Copy)]
struct Plan<'a> {
    n: usize,
    mounts: &'a [Mount],
    /// The `[s3]` table's body.
    s3: Option<&'a str>,
    /// Extra TOML (`[worker]`, `[client]` tables).
    extra: &'a str,
    /// Where the workers' journals go (default: the cluster's temporary directory).
    journal_root: Option<&'a Path>,
    /// Each worker's `memory_capacity`.
    memory: &'a str,
    /// Every worker serves the S3 gateway too (on an address of its own).
    gateways: bool,
}

impl Cluster {
    /// Write a config for `n` workers with these `[[mounts]]` (name, uri), an optional `[s3]`
    /// table body, and extra TOML (e.g. `[worker]`/`[client]` tables), then start the workers.
    /// Every worker's journal is `journal-wN` in the cluster's temporary directory.
    pub fn start(n: usize, mounts: &[(&str, String)], s3: Option<String>, extra: &str) -> anyhow::Result<Cluster> {
        let mounts: Vec<Mount> = mounts.iter().map(|(name, uri)| Mount::new(name, uri)).collect();
        Cluster::start_with(n, &mounts, s3, extra, None)
    }

    /// As [`Cluster::start`] over local directories, each worker with `memory` of page memory
    /// (e.g. `"8MiB"`, so that pages are evicted and slots reused) instead of 32 MiB.
    pub fn start_with_memory(
        n: usize,
        mounts: &[(&str, String)],
        extra: &str,
        memory: &str,
    ) -> anyhow::Result<Cluster> {
        let mounts: Vec<Mount> = mounts.iter().map(|(name, uri)| Mount::new(name, uri)).collect();
        Cluster::start_retrying(&Plan {
            n,
            mounts: &mounts,
            s3: None,
            extra,
            journal_root: None,
            memory,
            gateways: false,
        })
    }

    /// As [`Cluster::start`], with per-mount settings, and the workers' journals (`journal-wN`)
    /// under `journal_root` instead of the cluster's temporary directory (e.g. on a small tmpfs).
    /// A worker restarted with [`Cluster::start_worker`] finds its journal again and replays it.
    pub fn start_with(
        n: usize,
        mounts: &[Mount],
        s3: Option<String>,
        extra: &str,
        journal_root: Option<&Path>,
    ) -> anyhow::Result<Cluster> {
        Cluster::start_retrying(&Plan {
            n,
            mounts,
            s3: s3.as_deref(),
            extra,
            journal_root,
            memory: "32MiB",
            gateways: false,
        })
    }

    /// As [`Cluster::start_with`], each worker with `memory` of page memory instead of 32 MiB.
    pub fn start_sized(
        n: usize,
        mounts: &[Mount],
        s3: Option<String>,
        extra: &str,
        memory: &str,
    ) -> anyhow::Result<Cluster> {
        Cluster::start_retrying(&Plan {
            n,
            mounts,
            s3: s3.as_deref(),
            extra,
            journal_root: None,
            memory,
            gateways: false,
        })
    }

    /// As [`Cluster::start_sized`], and every worker's process serves the S3 gateway on an
    /// address of its own ([`WorkerProc::gateway`]); `extra` holds the `[gateway]` table.
    pub fn start_with_gateways(
        n: usize,
        mounts: &[Mount],
        s3: Option<String>,
        extra: &str,
        memory: &str,
    ) -> anyhow::Result<Cluster> {
        Cluster::start_retrying(&Plan {
            n,
            mounts,
            s3: s3.as_deref(),
            extra,
            journal_root: None,
            memory,
            gateways: true,
        })
    }

    fn start_retrying(plan: &Plan<'_>) -> anyhow::Result<Cluster> {
        // The ports come from `free_addr`, which releases them: a test running beside this one
        // may take one before a worker binds it. Start over with new ports when that happens.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Cluster::start_once(plan) {
                Err(e) if attempt < 5 && format!("{e:#}").contains("Address already in use") => {
                    eprintln!("a worker port was taken meanwhile, starting the cluster again: {e:#}");
                }
                other => return other,
            }
        }
    }

    fn start_once(plan: &Plan<'_>) -> anyhow::Result<Cluster> {
        let Plan {
            n,
            mounts,
            s3,
            extra,
            journal_root,
            memory,
            gateways,
        } = *plan;
        let dir = tempfile::tempdir()?;
        let journal_root = journal_root.unwrap_or(dir.path()).to_owned();
        let mut text = format!("token = \"test-token-{}\"\n{extra}\n", std::process::id());
        if let Some(s3) = s3 {
            text.push_str(&format!("[s3]\n{s3}\n"));
        }
        let mut workers = Vec::new();
        for i in 1..=n {
            let (addr, metrics) = (free_addr(), free_addr());
            let journal = journal_root.join(format!("journal-w{i}"));
            let socket = dir.path().join(format!("w{i}.sock"));
            // A small memory tier in front of an NVMe tier (as cluster-configs/local-3-workers.toml
            // has): a test of more than a few objects moves pages between the tiers.
            let nvme = dir.path().join(format!("nvme-w{i}"));
            text.push_str(&format!(
                "[[workers]]\nid = \"w{i}\"\naddr = \"{addr}\"\nmetrics = \"{metrics}\"\nmemory_capacity = \"{memory}\"\n\
                 journal_dir = {:?}\nshm_socket = {:?}\nnvme_dirs = [{:?}]\nnvme_capacity = \"256MiB\"\n",
                journal.display().to_string(),
                socket.display().to_string(),
                nvme.display().to_string()
            ));
            let gateway = gateways.then(free_addr);
            if let Some(g) = gateway {
                text.push_str(&format!("gateway = \"{g}\"\n"));
            }
            let log = dir.path().join(format!("w{i}.log"));
            workers.push(WorkerProc {
                id: format!("w{i}"),
                addr,
                metrics,
                log,
                gateway,
                child: None,
            });
        }
        for m in mounts {
            text.push_str(&format!(
                "[[mounts]]\nname = \"{}\"\nufs = \"{}\"\n{}\n",
                m.name, m.uri, m.settings
            ));
        }
        let config_path = dir.path().join("cluster.toml");
        std::fs::write(&config_path, &text)?;
        let config = ClusterConfig::parse(&text).context("test cluster config")?;
        let mut cluster = Cluster {
            dir,
            config_path,
            config,
            workers,
        };
        for i in 0..n {
            cluster.start_worker(i)?;
        }
        Ok(cluster)
    }

    /// Start (or restart) worker `i` and wait until it accepts connections.
    pub fn start_worker(&mut self, i: usize) -> anyhow::Result<()> {
        let w = &mut self.workers[i];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&w.log)?;
        let child = Command::new(hoard_bin())
            .args(["worker", "--id", &w.id, "--cluster"])
            .arg(&self.config_path)
            // Benchmarks turn the debug lines off (`HOARD_TEST_WORKER_LOG=info`).
            .env(
                "HOARD_LOG",
                std::env::var("HOARD_TEST_WORKER_LOG").unwrap_or_else(|_| "info,hoard_worker=debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn hoard worker")?;
        w.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(w.addr).is_err() || w.gateway.is_some_and(|g| TcpStream::connect(g).is_err()) {
            if let Some(status) = w.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("worker {} exited with {status}: {}", w.id, tail(&w.log));
            }
            if Instant::now() > deadline {
                bail!("worker {} did not start listening: {}", w.id, tail(&w.log));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGKILL worker `i`.
    pub fn kill_worker(&mut self, i: usize) {
        if let Some(mut child) = self.workers[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether worker `i` is still running.
    pub fn worker_alive(&mut self, i: usize) -> bool {
        self.workers[i]
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The process id of worker `i`, while it runs.
    pub fn worker_pid(&self, i: usize) -> Option<u32> {
        self.workers[i].child.as_ref().map(Child::id)
    }

    /// Bytes worker `i` has passed to `write`-like system calls so far (`wchar` of
    /// `/proc/PID/io`: files and sockets alike): what a test checks to see that a worker did not
    /// send some bytes again.
    pub fn worker_bytes_written(&self, i: usize) -> Option<u64> {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.worker_pid(i)?)).ok()?;
        io.lines().find_map(|l| l.strip_prefix("wchar:")?.trim().parse().ok())
    }

    /// A client of this cluster.
    pub fn client(&self) -> Client {
        Client::builder()
            .cluster(self.config.clone())
            .client_name("e2e-test")
            .build()
            .expect("client")
    }

    /// A client of the cluster that reads only through `transport` (for tests of what workers
    /// see: over shared memory a client re-reads hot pages without asking them).
    pub fn client_over(&self, transport: TransportChoice) -> Client {
        Client::builder()
            .cluster(self.config.clone())
            .transport(transport)
            .client_name("e2e-test")
            .build()
            .expect("client")
    }

    /// The Prometheus text of worker `i`.
    pub fn metrics_text(&self, i: usize) -> anyhow::Result<String> {
        scrape(self.workers[i].metrics)
    }

    /// The sum over all label sets of metric `name` (Prometheus spelling) on worker `i`.
    pub fn metric(&self, i: usize, name: &str) -> f64 {
        let text = self.metrics_text(i).unwrap_or_default();
        sum_metric(&text, name)
    }

    /// The sum of the series of metric `name` on worker `i` whose labels include `label`
    /// (`kind="locate"`).
    pub fn metric_labelled(&self, i: usize, name: &str, label: &str) -> f64 {
        let text = self.metrics_text(i).unwrap_or_default();
        let prefix = format!("{name}{{");
        text.lines()
            .filter(|l| l.starts_with(&prefix) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The sum of metric `name` over all workers that answer.
    pub fn metric_total(&self, name: &str) -> f64 {
        (0..self.workers.len()).map(|i| self.metric(i, name)).sum()
    }

    /// Lines of worker `i`'s log at level ERROR or WARN.
    pub fn log_problems(&self, i: usize) -> Vec<String> {
        let text = std::fs::read_to_string(&self.workers[i].log).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
            // Expected on hosts with no huge pages reserved (the memory tier's one warning).
            .filter(|l| !l.contains("huge pages not available"))
            .map(str::to_owned)
            .collect()
    }
}

impl Cluster {
    /// Fail when any worker logged an ERROR or WARN line: tests that expect no trouble call this.
    ///
    /// # Panics
    /// When a worker logged one.
    pub fn assert_clean_logs(&self) {
        for i in 0..self.workers.len() {
            let problems = self.log_problems(i);
            assert!(
                problems.is_empty(),
                "worker {} logged problems:\n{}",
                self.workers[i].id,
                problems.join("\n")
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.workers.len() {
            self.kill_worker(i);
        }
    }
}

/// The Prometheus text served at `addr` (a worker's or a mount's `--metrics`).
pub fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Sum of the samples of `name` in Prometheus text (any labels).
pub fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The last lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Run the `hoard` binary with these arguments against a cluster config; returns (exit ok,
/// stdout, stderr).
pub fn hoard(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(hoard_bin())
        .arg("--cluster")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run hoard");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}
