//! `hoard up`: the quickstart. Writes a single-node cluster config over a local directory and
//! runs its worker in the foreground.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use bytesize::ByteSize;
use hoard_transport::cluster::ClusterConfig;
use hoard_worker::WorkerConfig;
use rand::Rng;

use crate::cluster_file;

/// Write the quickstart config and serve it.
pub async fn run(
    dir: Option<PathBuf>,
    listen: SocketAddr,
    metrics: SocketAddr,
    memory: ByteSize,
) -> anyhow::Result<()> {
    let home = cluster_file::hoard_home();
    let dir = dir.unwrap_or_else(|| home.join("data"));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolve {}", dir.display()))?;
    std::fs::create_dir_all(&home).with_context(|| format!("create {}", home.display()))?;
    let config_path = cluster_file::default_cluster_file();
    // Keep the token of an earlier run, so clients configured with it keep working.
    let token = ClusterConfig::load(&config_path)
        .map(|c| c.token)
        .unwrap_or_else(|_| new_token());
    let text = config_text(&token, &dir, listen, metrics, memory);
    let cluster = ClusterConfig::parse(&text).context("build the quickstart config")?;
    std::fs::write(&config_path, &text).with_context(|| format!("write {}", config_path.display()))?;
    print_tour(&dir, &config_path, metrics);
    super::worker::serve(WorkerConfig::from_cluster(&cluster, "w1")?).await
}

fn new_token() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

fn config_text(token: &str, dir: &Path, listen: SocketAddr, metrics: SocketAddr, memory: ByteSize) -> String {
    let ufs = format!("file://{}", dir.display());
    let memory = memory.as_u64();
    format!(
        "# Written by `hoard up`: a single worker serving one local directory.\n\
         token = \"{token}\"\n\n\
         [[workers]]\nid = \"w1\"\naddr = \"{listen}\"\nmetrics = \"{metrics}\"\nmemory_capacity = {memory}\n\n\
         [[mounts]]\nname = \"data\"\nufs = {ufs:?}\n"
    )
}

fn print_tour(dir: &Path, config: &Path, metrics: SocketAddr) {
    println!("hoard is up: one worker caching {} as mount `data`.", dir.display());
    println!(
        "  cluster config: {} (the default for every hoard command)",
        config.display()
    );
    println!("  metrics:        http://{metrics}/metrics");
    println!();
    println!("Try, in another terminal:");
    println!(
        "  cp some-file {}/            # put data in the directory",
        dir.display()
    );
    println!("  hoard ls /data              # list it through hoard");
    println!("  hoard load /data            # preload it into the cache");
    println!("  hoard cat /data/some-file   # read it (now from memory)");
    println!("  hoard put other-file /data/ # write a file through hoard");
    println!("  hoard cluster status        # capacity, used, hit ratio");
    println!();
    println!("Ctrl-C stops the worker.");
}
