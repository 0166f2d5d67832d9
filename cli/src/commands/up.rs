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
    s3: SocketAddr,
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
    // Keep the token and the S3 key of an earlier run, so clients configured with them keep
    // working.
    let earlier = ClusterConfig::load(&config_path).ok();
    let token = earlier.as_ref().map_or_else(new_token, |c| c.token.clone());
    let secret = earlier
        .as_ref()
        .and_then(|c| c.gateway.keys.first().map(|k| k.secret_key.clone()))
        .unwrap_or_else(new_token);
    let addrs = Addrs { listen, metrics, s3 };
    let text = config_text(&token, &secret, &dir, addrs, memory);
    let cluster = ClusterConfig::parse(&text).context("build the quickstart config")?;
    std::fs::write(&config_path, &text).with_context(|| format!("write {}", config_path.display()))?;
    print_tour(&dir, &config_path, metrics, s3, &secret);
    let worker = WorkerConfig::from_cluster(&cluster, "w1")?;
    super::worker::serve_with_gateway(cluster, worker).await
}

/// The quickstart's addresses: RPC, metrics, S3.
struct Addrs {
    listen: SocketAddr,
    metrics: SocketAddr,
    s3: SocketAddr,
}

fn new_token() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

fn config_text(token: &str, secret: &str, dir: &Path, addrs: Addrs, memory: ByteSize) -> String {
    let ufs = format!("file://{}", dir.display());
    let memory = memory.as_u64();
    let Addrs { listen, metrics, s3 } = addrs;
    format!(
        "# Written by `hoard up`: a single worker serving one local directory, over hoard's\n\
         # protocol and as an S3 endpoint (bucket `data`).\n\
         token = \"{token}\"\n\n\
         [[workers]]\nid = \"w1\"\naddr = \"{listen}\"\nmetrics = \"{metrics}\"\ngateway = \"{s3}\"\n\
         memory_capacity = {memory}\n\n\
         [[mounts]]\nname = \"data\"\nufs = {ufs:?}\n\n\
         [[gateway.keys]]\naccess_key = \"{UP_ACCESS_KEY}\"\nsecret_key = \"{secret}\"\n"
    )
}

/// The access key of the quickstart's S3 endpoint.
const UP_ACCESS_KEY: &str = "hoard";

fn print_tour(dir: &Path, config: &Path, metrics: SocketAddr, s3: SocketAddr, secret: &str) {
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
    println!("Or with any S3 client (bucket `data` is the directory):");
    println!(
        "  AWS_ACCESS_KEY_ID={UP_ACCESS_KEY} AWS_SECRET_ACCESS_KEY={secret} aws --endpoint-url http://{s3} s3 ls s3://data/"
    );
    println!();
    println!("Ctrl-C stops the worker.");
}
