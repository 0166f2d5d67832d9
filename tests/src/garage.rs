//! A real Garage S3 server for tests: one single-node process on loopback ports, in a temporary
//! directory, with one bucket and one key.
//!
//! End-to-end tests must run against a real S3 implementation (a double never replaces a real
//! component there), and some must stop S3 under a running cluster and bring it back with its
//! data ("the cache still serves with S3 down"). Garage 2.5.0 starts in about 0.1 s, persists
//! across restarts in the same folders and checks SigV4, which makes it a good stand-in.
//!
//! The binary is `$GARAGE_BIN`, else `garage` on `PATH`, else `~/.cargo/bin/garage`
//! (`scripts/test.sh` installs it). When `scripts/tcp_nodelay_shim.so` exists it is preloaded, so
//! that small GETs are not delayed by Nagle's algorithm (Garage does not set `TCP_NODELAY`).

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hoard_ufs::{S3Config, S3UnderStore};
use tokio::net::TcpStream;

/// How long Garage may take to open its S3 port.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Lines of Garage's log quoted when it fails to start.
const LOG_TAIL_LINES: usize = 40;

/// A running (or stopped) Garage server. Dropping it kills the process and removes its data.
#[derive(Debug)]
pub struct Garage {
    /// S3 endpoint URL, `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The bucket Garage created at start, readable and writable with the key below.
    pub bucket: String,
    /// Access key id (`GK` + 24 hex digits, the form Garage generates itself).
    pub access_key: String,
    /// Secret key (64 hex digits).
    pub secret_key: String,
    /// Region to sign requests for.
    pub region: String,
    s3_addr: SocketAddr,
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Holds the metadata, data, config and log; removed on drop.
    dir: tempfile::TempDir,
}

impl Garage {
    /// Starts a fresh single-node Garage with a default bucket, waiting until its S3 port accepts
    /// connections.
    ///
    /// # Errors
    /// When the binary cannot be found, or Garage exits or does not listen within 30 s (the error
    /// quotes the end of its log).
    pub async fn start() -> anyhow::Result<Garage> {
        let binary = find_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("hoard-garage-")
            .tempdir()
            .context("create Garage's directory")?;
        let [s3_addr, rpc_addr] = free_loopback_addrs()?;
        let region = "garage".to_owned();
        let config = dir.path().join("garage.toml");
        fs::write(&config, config_toml(dir.path(), s3_addr, rpc_addr, &region)).context("write Garage's config")?;
        let mut garage = Garage {
            endpoint: format!("http://{s3_addr}"),
            bucket: "hoard-test".to_owned(),
            access_key: format!("GK{}", random_hex(12)),
            secret_key: random_hex(32),
            region,
            s3_addr,
            binary,
            config,
            log: dir.path().join("garage.log"),
            child: None,
            dir,
        };
        garage.launch().await?;
        Ok(garage)
    }

    /// Kills the server (SIGKILL, as a crash would) and reaps it. Its data stays for
    /// [`Garage::restart`]. Does nothing when it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Killing a child we still own only fails if it already exited; `wait` reaps it either way.
            if let Err(e) = child.kill() {
                eprintln!("garage: kill {}: {e}", child.id());
            }
            if let Err(e) = child.wait() {
                eprintln!("garage: wait for {}: {e}", child.id());
            }
        }
    }

    /// Starts the server again on the same directories and ports, after [`Garage::stop`] (or kills
    /// it first when it still runs). Objects written before are still there.
    ///
    /// # Errors
    /// As [`Garage::start`].
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.launch().await
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Settings for [`S3UnderStore`] to reach this server.
    pub fn s3_config(&self) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint.clone()),
            region: Some(self.region.clone()),
            path_style: true,
            access_key_id: Some(self.access_key.clone()),
            secret_access_key: Some(self.secret_key.clone()),
        }
    }

    /// The mount URI of the bucket's keys under `prefix`: `s3://bucket/prefix`.
    pub fn uri(&self, prefix: &str) -> String {
        match prefix.trim_start_matches('/') {
            "" => format!("s3://{}", self.bucket),
            prefix => format!("s3://{}/{prefix}", self.bucket),
        }
    }

    /// An under-store of the bucket's keys under `prefix`.
    ///
    /// # Errors
    /// As [`S3UnderStore::new`].
    pub async fn under_store(&self, prefix: &str) -> anyhow::Result<S3UnderStore> {
        let store = S3UnderStore::new(self.bucket.clone(), prefix.to_owned(), &self.s3_config()).await?;
        Ok(store)
    }

    /// The directory holding Garage's config, log, metadata and data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `lines` lines of Garage's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text =
            fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()));
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Spawns the process and waits for its S3 port.
    async fn launch(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .context("open Garage's log")?;
        let log_err = log.try_clone().context("open Garage's log")?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-c")
            .arg(&self.config)
            .args(["server", "--single-node", "--default-bucket"]);
        cmd.env("GARAGE_DEFAULT_ACCESS_KEY", &self.access_key)
            .env("GARAGE_DEFAULT_SECRET_KEY", &self.secret_key)
            .env("GARAGE_DEFAULT_BUCKET", &self.bucket)
            .env(
                "RUST_LOG",
                std::env::var("GARAGE_LOG").unwrap_or_else(|_| "garage=info".to_owned()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if let Some(shim) = nodelay_shim() {
            cmd.env("LD_PRELOAD", shim);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", self.binary.display()))?;
        self.child = Some(child);
        self.wait_until_listening().await
    }

    async fn wait_until_listening(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let connect = TcpStream::connect(self.s3_addr);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), connect).await {
                return Ok(());
            }
            let exited = match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Err(e)) => Some(e.to_string()),
                _ => None,
            };
            if let Some(status) = exited {
                self.child = None;
                bail!(
                    "Garage exited ({status}) before listening; log:\n{}",
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            if Instant::now() > deadline {
                self.stop();
                bail!(
                    "Garage did not listen on {} within {START_TIMEOUT:?}; log:\n{}",
                    self.s3_addr,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Garage's configuration: everything under `dir`, both ports on loopback, the default
/// `compression_level` (1) and LMDB metadata.
fn config_toml(dir: &Path, s3_addr: SocketAddr, rpc_addr: SocketAddr, region: &str) -> String {
    let meta = dir.join("meta").display().to_string();
    let data = dir.join("data").display().to_string();
    let secret = random_hex(32);
    format!(
        "metadata_dir = {meta:?}\ndata_dir = {data:?}\ndb_engine = \"lmdb\"\nreplication_factor = 1\n\
         rpc_bind_addr = \"{rpc_addr}\"\nrpc_public_addr = \"{rpc_addr}\"\nrpc_secret = \"{secret}\"\n\n\
         [s3_api]\napi_bind_addr = \"{s3_addr}\"\ns3_region = {region:?}\n"
    )
}

/// `N` distinct loopback addresses with ports that were free a moment ago.
fn free_loopback_addrs<const N: usize>() -> anyhow::Result<[SocketAddr; N]> {
    let mut listeners = Vec::with_capacity(N);
    for _ in 0..N {
        listeners.push(TcpListener::bind("127.0.0.1:0").context("pick a free port")?);
    }
    let mut addrs = [SocketAddr::from(([127, 0, 0, 1], 0)); N];
    for (addr, listener) in addrs.iter_mut().zip(&listeners) {
        *addr = listener.local_addr().context("pick a free port")?;
    }
    Ok(addrs)
}

fn random_hex(bytes: usize) -> String {
    (0..bytes).fold(String::with_capacity(bytes * 2), |mut s, _| {
        write!(s, "{:02x}", rand::random::<u8>()).expect("writing to a String cannot fail");
        s
    })
}

/// `$GARAGE_BIN`, else `garage` on `PATH`, else `~/.cargo/bin/garage`.
fn find_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("GARAGE_BIN") {
        let bin = PathBuf::from(bin);
        anyhow::ensure!(bin.is_file(), "GARAGE_BIN={} is not a file", bin.display());
        return Ok(bin);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let in_cargo = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin"));
    let found = on_path
        .chain(in_cargo)
        .map(|dir| dir.join("garage"))
        .find(|bin| is_executable(bin));
    found.context(
        "no `garage` binary (looked at $GARAGE_BIN, PATH, ~/.cargo/bin); scripts/test.sh installs Garage 2.5.0",
    )
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    File::open(path)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `scripts/tcp_nodelay_shim.so` of this workspace, if it was built.
fn nodelay_shim() -> Option<PathBuf> {
    let shim = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/tcp_nodelay_shim.so");
    shim.is_file().then(|| shim.canonicalize().unwrap_or(shim))
}
