//! A real cluster for tests and benchmarks written outside Rust (the Python package's pytest
//! suite and its data-loading benchmark): a Garage S3 server and `hoard worker` processes on
//! loopback, with two mounts, `local` (a fresh directory) and `s3` (a prefix of Garage's
//! bucket), both written through.
//!
//! ```text
//! hoard-test-cluster [--workers N] [--memory SIZE] [--extra TOML] [--gateway]
//! ```
//!
//! Once every process listens it prints `key=value` lines on stdout, ending with `ready`:
//! `config` (the cluster config's path), `local_dir`, `s3_endpoint`, `s3_region`, `s3_bucket`,
//! `s3_prefix`, `s3_access_key`, `s3_secret_key`. It then runs until its stdin is closed (its
//! parent exited or is done) and stops everything, removing the data.
//!
//! With `--gateway` every worker's process also serves the S3 gateway (`gateway_1`,
//! `gateway_2`, ... are their addresses; `gateway_access_key` and `gateway_secret_key` sign
//! requests), and three more mounts exist: `back` (written back, `back_dir`)
//! `public` (readable without a signature, `public_dir`) and `remote` (the Garage prefix
//! `remote_prefix`, written through).

use std::io::{Read, Write};

use anyhow::{Context, bail};
use hoard_tests::cluster::{Cluster, Mount};
use hoard_tests::garage::Garage;

struct Args {
    workers: usize,
    memory: String,
    extra: String,
    gateway: bool,
}

/// The Garage prefix of the `remote` mount.
const REMOTE_PREFIX: &str = "gw";

/// The gateway's access key in test clusters.
const GATEWAY_ACCESS_KEY: &str = "hoard-test-access";
/// Its secret key.
const GATEWAY_SECRET_KEY: &str = "hoard-test-secret-0123456789";

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        workers: 2,
        memory: "256MiB".into(),
        extra: String::new(),
        gateway: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--workers" => args.workers = value()?.parse().context("--workers")?,
            "--memory" => args.memory = value()?,
            "--extra" => args.extra = value()?,
            "--gateway" => args.gateway = true,
            other => bail!("unknown argument `{other}` (see the file's header for usage)"),
        }
    }
    Ok(args)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let garage = Garage::start().await.context("start Garage")?;
    let local = tempfile::Builder::new().prefix("hoard-test-local-").tempdir()?;
    let prefix = "py";
    let s3 = format!(
        "endpoint = \"{}\"\nregion = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
        garage.endpoint, garage.region, garage.access_key, garage.secret_key
    );
    let back = tempfile::Builder::new().prefix("hoard-test-back-").tempdir()?;
    let public = tempfile::Builder::new().prefix("hoard-test-public-").tempdir()?;
    let mut mounts = vec![
        Mount::new("local", &format!("file://{}", local.path().display())),
        Mount::new("s3", &garage.uri(prefix)),
    ];
    let cluster = if args.gateway {
        mounts.push(Mount::new("back", &format!("file://{}", back.path().display())).write_mode("back"));
        mounts.push(Mount::new("public", &format!("file://{}", public.path().display())).with("anonymous = \"read\""));
        // A bucket name AWS's rules accept (copy sources must have one): `s3` is too short.
        mounts.push(Mount::new("remote", &garage.uri(REMOTE_PREFIX)));
        let extra = format!(
            "{}\n[[gateway.keys]]\naccess_key = \"{GATEWAY_ACCESS_KEY}\"\nsecret_key = \"{GATEWAY_SECRET_KEY}\"\n",
            args.extra
        );
        Cluster::start_with_gateways(args.workers, &mounts, Some(s3), &extra, &args.memory)?
    } else {
        Cluster::start_sized(args.workers, &mounts, Some(s3), &args.extra, &args.memory)?
    };
    // A worker listens before it has mapped its memory tier (which takes a while for a large
    // one): ready means every worker answers.
    let client = cluster.client();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status = client.cluster_status().await;
        match status.iter().find(|(_, s)| s.is_err()) {
            None => break,
            Some((id, Err(e))) if std::time::Instant::now() > deadline => bail!("worker {id} does not answer: {e}"),
            Some(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "config={}", cluster.config_path.display())?;
    writeln!(out, "local_dir={}", local.path().display())?;
    writeln!(out, "s3_endpoint={}", garage.endpoint)?;
    writeln!(out, "s3_region={}", garage.region)?;
    writeln!(out, "s3_bucket={}", garage.bucket)?;
    writeln!(out, "s3_prefix={prefix}")?;
    writeln!(out, "s3_access_key={}", garage.access_key)?;
    writeln!(out, "s3_secret_key={}", garage.secret_key)?;
    if args.gateway {
        for (i, w) in cluster.workers.iter().enumerate() {
            if let Some(g) = w.gateway {
                writeln!(out, "gateway_{}={g}", i + 1)?;
            }
        }
        writeln!(out, "gateway_access_key={GATEWAY_ACCESS_KEY}")?;
        writeln!(out, "gateway_secret_key={GATEWAY_SECRET_KEY}")?;
        writeln!(out, "back_dir={}", back.path().display())?;
        writeln!(out, "public_dir={}", public.path().display())?;
        writeln!(out, "remote_prefix={REMOTE_PREFIX}")?;
    }
    writeln!(out, "ready")?;
    out.flush()?;
    drop(out);
    // Until the parent closes our stdin (or dies, which closes it too).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(cluster);
    drop(garage);
    Ok(())
}
