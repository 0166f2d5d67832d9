//! Where the cluster config comes from: `--cluster`, then `HOARD_CLUSTER` (both through clap),
//! then the file `hoard up` writes.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hoard_client::Client;
use hoard_transport::cluster::ClusterConfig;

/// The directory `hoard up` uses: `$HOARD_HOME`, else `~/.hoard`.
pub fn hoard_home() -> PathBuf {
    if let Some(dir) = std::env::var_os("HOARD_HOME") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".hoard")
}

/// The config file `hoard up` writes.
pub fn default_cluster_file() -> PathBuf {
    hoard_home().join("cluster.toml")
}

/// The cluster config file to use.
pub fn resolve(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path.to_owned());
    }
    let default = default_cluster_file();
    if default.exists() {
        return Ok(default);
    }
    bail!("no cluster config: pass --cluster FILE, set HOARD_CLUSTER, or start one with `hoard up`")
}

/// Load the cluster config.
pub fn load(flag: Option<&Path>) -> anyhow::Result<ClusterConfig> {
    let path = resolve(flag)?;
    ClusterConfig::load(&path).with_context(|| format!("load cluster config {}", path.display()))
}

/// A client of the cluster.
pub fn client(flag: Option<&Path>) -> anyhow::Result<Client> {
    Ok(Client::builder()
        .cluster(load(flag)?)
        .client_name(format!("hoard-cli-{}", std::process::id()))
        .build()?)
}
