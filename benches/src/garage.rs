//! A single-node Garage S3 server for the write benchmarks, started the way the end-to-end tests
//! start theirs (`tests/src/garage.rs`): loopback ports, one bucket and one key made at start,
//! and `scripts/tcp_nodelay_shim.so` preloaded when it was built (Garage leaves Nagle on).
//!
//! The harness cannot use the tests' helper: nothing depends on the `tests` crate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use hoard_ufs::S3Config;

use crate::procs::{ChildGuard, free_addr};

/// A running Garage; killed when dropped.
#[derive(Debug)]
pub struct Garage {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket made at start.
    pub bucket: String,
    /// Region requests are signed for.
    pub region: String,
    access_key: String,
    secret_key: String,
    _process: ChildGuard,
}

impl Garage {
    /// Start Garage with its metadata, data, config and log under `dir`.
    ///
    /// # Errors
    /// When no `garage` binary is found, or it does not listen within 30 s.
    pub async fn start(dir: &Path) -> anyhow::Result<Garage> {
        let binary = find_binary()?;
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let (s3_addr, rpc_addr) = (free_addr()?, free_addr()?);
        let region = "garage".to_owned();
        let config = dir.join("garage.toml");
        let text = format!(
            "metadata_dir = {:?}\ndata_dir = {:?}\ndb_engine = \"lmdb\"\nreplication_factor = 1\n\
             rpc_bind_addr = \"{rpc_addr}\"\nrpc_public_addr = \"{rpc_addr}\"\nrpc_secret = \"{}\"\n\n\
             [s3_api]\napi_bind_addr = \"{s3_addr}\"\ns3_region = {region:?}\n",
            dir.join("meta").display().to_string(),
            dir.join("data").display().to_string(),
            random_hex(32),
        );
        std::fs::write(&config, text).context("write Garage's config")?;
        let (bucket, access_key, secret_key) = (
            "hoard-bench".to_owned(),
            format!("GK{}", random_hex(12)),
            random_hex(32),
        );
        let mut command = Command::new(&binary);
        command
            .arg("-c")
            .arg(&config)
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", &access_key)
            .env("GARAGE_DEFAULT_SECRET_KEY", &secret_key)
            .env("GARAGE_DEFAULT_BUCKET", &bucket)
            .env("RUST_LOG", "garage=warn")
            .env("NO_COLOR", "1");
        if let Some(shim) = nodelay_shim() {
            command.env("LD_PRELOAD", shim);
        }
        let mut process = ChildGuard::spawn("garage", command, &dir.join("garage.log"))?;
        process.wait_listening(s3_addr, Duration::from_secs(30)).await?;
        Ok(Garage {
            endpoint: format!("http://{s3_addr}"),
            bucket,
            region,
            access_key,
            secret_key,
            _process: process,
        })
    }

    /// Settings for `S3UnderStore` to reach this server.
    pub fn s3_config(&self) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint.clone()),
            region: Some(self.region.clone()),
            path_style: true,
            access_key_id: Some(self.access_key.clone()),
            secret_access_key: Some(self.secret_key.clone()),
        }
    }

    /// The access key of the bucket.
    pub fn access_key(&self) -> String {
        self.access_key.clone()
    }

    /// Its secret key.
    pub fn secret_key(&self) -> String {
        self.secret_key.clone()
    }

    /// The `[s3]` table of a cluster config that reaches this server.
    pub fn s3_toml(&self) -> String {
        format!(
            "[s3]\nendpoint = \"{}\"\nregion = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            self.endpoint, self.region, self.access_key, self.secret_key
        )
    }
}

/// `$GARAGE_BIN`, else `garage` on `PATH`, else `~/.cargo/bin/garage`.
fn find_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("GARAGE_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let in_cargo = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin"));
    std::env::split_paths(&path)
        .chain(in_cargo)
        .map(|dir| dir.join("garage"))
        .find(|p| p.is_file())
        .context("find `garage` (GARAGE_BIN, PATH, ~/.cargo/bin): scripts/test.sh installs Garage 2.5.0")
}

/// `scripts/tcp_nodelay_shim.so` of this workspace, if it was built.
fn nodelay_shim() -> Option<PathBuf> {
    let shim = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/tcp_nodelay_shim.so");
    shim.canonicalize().ok().filter(|p| p.is_file())
}

fn random_hex(bytes: usize) -> String {
    (0..bytes).fold(String::with_capacity(bytes * 2), |mut s, _| {
        write!(s, "{:02x}", rand::random::<u8>()).expect("writing to a String cannot fail");
        s
    })
}
