//! hoard under test: a real `hoard worker` process over a `file://` mount, warmed with
//! `Client::load`, and read through the client library exactly as an application would: the
//! file is opened once (`Client::open`, one stat) and read with `OpenFile::read`, by one client
//! over TCP and one over shared memory.
//!
//! Three diagnostics split a 4 KiB read's time: `Client::read` (which stats the file before
//! every read), `Client::stat` alone, and a read request sent straight over one wire connection
//! (no client library: no ring, no failover, no reply checks).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use hoard_client::{Client, FileMeta, LoadSummary, OpenFile, TransportChoice};
use hoard_transport::Transport;
use hoard_transport::cluster::ClusterConfig;
use hoard_transport::tcp::{ConnectOptions, TcpTransport};
use hoard_transport::wire::{FileKey, Payload, ReadRequest, Request, Response};
use rand::{RngCore, SeedableRng};

use crate::cli::{IO_BYTES, ReadPlan};
use crate::procs::{ChildGuard, free_addr};

/// The mount the benchmark's file lives in.
const MOUNT: &str = "bench";
/// The file's key in the mount.
const KEY: &str = "data.bin";

/// A worker holding the whole benchmark file in memory, and a client of it.
#[derive(Debug)]
pub struct HoardFixture {
    /// The client the benchmark reads through over TCP (default config: checksums verified).
    pub client: Client,
    /// The file, opened through `client`.
    pub file: OpenFile,
    /// The file, opened through a client that reads over shared memory.
    pub shm_file: OpenFile,
    /// `/MOUNT/KEY`.
    pub path: String,
    /// The file's size and version, as the worker reports them.
    pub meta: FileMeta,
    /// What the preload did.
    pub load: LoadSummary,
    /// The file itself, to check what hoard returns.
    data: File,
    worker: ChildGuard,
}

impl HoardFixture {
    /// Write the file, the config, start the worker and preload the file.
    ///
    /// # Errors
    /// When any of these steps fails; a worker that dies shows its log's tail.
    pub async fn start(dir: &Path, plan: &ReadPlan) -> anyhow::Result<HoardFixture> {
        let data_dir = dir.join("ufs");
        std::fs::create_dir_all(&data_dir).context("create the mount directory")?;
        let data_path = data_dir.join(KEY);
        let size = plan.size_bytes;
        let writer_path = data_path.clone();
        tokio::task::spawn_blocking(move || write_random_file(&writer_path, size))
            .await
            .context("join the file writer")??;
        let (addr, metrics) = (free_addr()?, free_addr()?);
        let config_path = dir.join("cluster.toml");
        let text = cluster_toml(addr, metrics, &data_dir, size);
        ClusterConfig::parse(&text).context("check the generated cluster config")?;
        std::fs::write(&config_path, &text).context("write the cluster config")?;
        let mut command = Command::new(&plan.hoard_bin);
        command
            .args(["worker", "--id", "w1", "--cluster"])
            .arg(&config_path)
            .env("HOARD_LOG", "warn");
        let mut worker = ChildGuard::spawn("hoard worker", command, &dir.join("worker.log"))?;
        worker.wait_listening(addr, Duration::from_secs(30)).await?;
        let config = ClusterConfig::load(&config_path).context("load the cluster config")?;
        let client = Client::builder()
            .cluster(config.clone())
            .transport(TransportChoice::Tcp)
            .client_name("hoard-bench")
            .build()
            .context("build the client")?;
        let shm_client = Client::builder()
            .cluster(config)
            .transport(TransportChoice::Shm)
            .client_name("hoard-bench-shm")
            .build()
            .context("build the shared-memory client")?;
        let path = format!("/{MOUNT}/{KEY}");
        let load = client
            .load(&path, &|_| {})
            .await
            .with_context(|| format!("preload {path}"))?;
        ensure!(load.bytes == size, "preloaded {} bytes of {size}", load.bytes);
        let file = client.open(&path).await.with_context(|| format!("open {path}"))?;
        let shm_file = shm_client
            .open(&path)
            .await
            .with_context(|| format!("open {path} over shared memory"))?;
        let meta = file.meta().clone();
        let data = File::open(&data_path).with_context(|| format!("open {}", data_path.display()))?;
        Ok(HoardFixture {
            client,
            file,
            shm_file,
            path,
            meta,
            load,
            data,
            worker,
        })
    }

    /// Read 4 KiB at `offset` of the opened file (no stat).
    ///
    /// # Errors
    /// When the read fails or comes back short.
    pub async fn read_4k(&self, offset: u64) -> anyhow::Result<()> {
        let bytes = self
            .file
            .read(offset, IO_BYTES)
            .await
            .context("read 4 KiB through hoard")?;
        check_4k(&bytes)
    }

    /// Read 4 KiB at `offset` of the file opened over shared memory; with `check`, compare the
    /// bytes with the file.
    ///
    /// # Errors
    /// When the read fails, comes back short, or returns other bytes.
    pub async fn read_4k_shm(&self, offset: u64, check: bool) -> anyhow::Result<()> {
        let bytes = self
            .shm_file
            .read(offset, IO_BYTES)
            .await
            .context("read 4 KiB through hoard over shared memory")?;
        check_4k(&bytes)?;
        if check {
            self.check(offset, &bytes)?;
        }
        Ok(())
    }

    /// Read 4 KiB at `offset` with `Client::read`, which stats the file first.
    ///
    /// # Errors
    /// When the read fails or comes back short.
    pub async fn read_4k_with_stat(&self, offset: u64) -> anyhow::Result<()> {
        let bytes = self
            .client
            .read(&self.path, offset, IO_BYTES)
            .await
            .context("read 4 KiB through hoard")?;
        check_4k(&bytes)
    }

    /// Read 4 KiB at `offset` of the opened file and compare with the file on disk.
    ///
    /// # Errors
    /// When the read fails or returns other bytes.
    pub async fn read_4k_checked(&self, offset: u64) -> anyhow::Result<()> {
        let bytes = self
            .file
            .read(offset, IO_BYTES)
            .await
            .context("read 4 KiB through hoard")?;
        self.check(offset, &bytes)
    }

    /// Compare bytes read at `offset` with the file.
    ///
    /// # Errors
    /// When they differ.
    pub fn check(&self, offset: u64, got: &[u8]) -> anyhow::Result<()> {
        let mut want = vec![0u8; got.len()];
        self.data
            .read_exact_at(&mut want, offset)
            .context("read the benchmark file")?;
        ensure!(
            got == want.as_slice(),
            "hoard returned wrong bytes for {} at {offset}",
            got.len()
        );
        Ok(())
    }

    /// Stat the file through the client (the first round trip of every `read`).
    ///
    /// # Errors
    /// When the stat fails or reports another version.
    pub async fn stat(&self) -> anyhow::Result<()> {
        let meta = self.client.stat(&self.path).await.context("stat through hoard")?;
        ensure!(
            meta.version == self.meta.version,
            "the benchmark file changed under the benchmark"
        );
        Ok(())
    }

    /// A client like the benchmark's with a changed client config.
    ///
    /// # Errors
    /// When the changed config is refused.
    pub fn client_with(&self, change: impl FnOnce(&mut ClusterConfig)) -> anyhow::Result<Client> {
        let mut config = self.client.config().clone();
        change(&mut config);
        Client::builder()
            .cluster(config)
            .transport(TransportChoice::Tcp)
            .client_name("hoard-bench-variant")
            .build()
            .context("build a client variant")
    }

    /// A wire-level reader of the file: one connection, the version already known.
    ///
    /// # Errors
    /// When the connection or its handshake fails.
    pub async fn wire_reader(&self) -> anyhow::Result<WireReader> {
        let config = self.client.config();
        let worker = &config.workers[0];
        let conn = TcpTransport::connect(worker.addr, ConnectOptions::new(config.token.clone()))
            .await
            .context("connect to the worker")?;
        let file = FileKey {
            mount: MOUNT.into(),
            path: KEY.into(),
            version: self.meta.version.clone(),
        };
        Ok(WireReader {
            conn,
            file,
            size: self.meta.size,
        })
    }

    /// The worker's process id.
    pub fn worker_pid(&self) -> u32 {
        self.worker.pid()
    }

    /// The worker's log, for error messages.
    pub fn worker_log(&self) -> String {
        self.worker.log_tail()
    }
}

/// Reads sent straight over one wire connection, without the client's stat, ring or checks.
#[derive(Debug)]
pub struct WireReader {
    conn: TcpTransport,
    file: FileKey,
    size: u64,
}

impl WireReader {
    /// Read 4 KiB at `offset`: one round trip.
    ///
    /// # Errors
    /// When the call fails or the reply is not 4 KiB of data.
    pub async fn read_4k(&self, offset: u64) -> anyhow::Result<()> {
        let request = Request::Read(ReadRequest {
            file: self.file.clone(),
            file_size: self.size,
            offset,
            len: IO_BYTES,
        });
        let reply = self
            .conn
            .call(request, Payload::default())
            .await
            .context("read 4 KiB over the wire")?;
        ensure!(
            matches!(reply.message, Response::Read(_)),
            "the worker answered {:?}",
            reply.message.kind()
        );
        ensure!(
            reply.payload.len() == IO_BYTES,
            "the worker returned {} bytes",
            reply.payload.len()
        );
        Ok(())
    }
}

/// The cluster config: one worker with room for the whole file, one `file://` mount, defaults
/// for everything else (readahead, checksums, connections).
fn cluster_toml(addr: std::net::SocketAddr, metrics: std::net::SocketAddr, data_dir: &Path, size: u64) -> String {
    let capacity_mib = (size + size / 2).div_ceil(1 << 20).max(256);
    let token: String = format!("hoard-bench-{}-{:016x}", std::process::id(), rand::random::<u64>());
    format!(
        "token = \"{token}\"\n\n[[workers]]\nid = \"w1\"\naddr = \"{addr}\"\nmetrics = \"{metrics}\"\n\
         memory_capacity = \"{capacity_mib}MiB\"\n\n[[mounts]]\nname = \"{MOUNT}\"\nufs = \"file://{}\"\n",
        data_dir.display()
    )
}

/// Write `size` random bytes to `path`.
fn write_random_file(path: &Path, size: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x68_6f61_7264);
    let mut block = vec![0u8; 8 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        rng.fill_bytes(&mut block[..n]);
        out.write_all(&block[..n]).context("write the benchmark file")?;
        left -= n as u64;
    }
    Ok(())
}

/// A 4 KiB read must return 4 KiB.
fn check_4k(bytes: &[u8]) -> anyhow::Result<()> {
    ensure!(
        bytes.len() as u64 == IO_BYTES,
        "hoard returned {} bytes, not 4096",
        bytes.len()
    );
    Ok(())
}
