//! `hoard-bench checkpoint`: checkpoint save throughput. N writers each stream one shard at once,
//! through hoard in `back` mode and in `through` mode (a real worker process on a real Garage S3
//! server), side by side in the same run with writing the same bytes to local disk with `fsync`
//! and with uploading them straight to the S3 server.
//!
//! `back` mode is timed until every writer's close returned (acknowledged = fsync'd in the
//! worker's journal), and again until `sync` says the under-store has everything. The journal
//! and the local-disk peer's files share one filesystem (`--dir`), so the first ratio compares
//! like with like.

mod writers;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hoard_client::Client;
use hoard_transport::cluster::ClusterConfig;
use hoard_ufs::S3UnderStore;
use serde::Serialize;

use crate::cli::CheckpointPlan;
use crate::garage::Garage;
use crate::procs::{ChildGuard, free_addr};
use crate::report::{Environment, Row, Target, table};
use writers::Shards;

/// Everything one `hoard-bench checkpoint` run measured.
#[derive(Debug, Serialize)]
pub struct CheckpointReport {
    /// When and where.
    pub environment: Environment,
    /// The parameters used.
    pub params: serde_json::Value,
    /// Seconds per run: local disk with fsync.
    pub local_disk_seconds: Vec<f64>,
    /// Seconds per run: hoard `back`, until every close returned.
    pub back_ack_seconds: Vec<f64>,
    /// Seconds per run: hoard `back`, until `sync` returned (from the first byte).
    pub back_sync_seconds: Vec<f64>,
    /// Seconds per run: hoard `through`, until every close returned.
    pub through_seconds: Vec<f64>,
    /// Seconds per run: straight to S3 (multipart).
    pub direct_s3_seconds: Vec<f64>,
    /// The comparison rows.
    pub rows: Vec<Row>,
}

/// Run the benchmark, print the table, and write the JSON file if asked.
///
/// # Errors
/// When a system cannot be started or a measurement fails.
pub fn run(plan: CheckpointPlan) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("hoard-bench: warning: this is a debug build of the harness; build it with --release");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let report = runtime.block_on(async {
        // On SIGINT or SIGTERM the measuring future is dropped, and with it the process guards.
        tokio::select! {
            report = measure(&plan) => report,
            signal = stop_signal() => Err(anyhow::anyhow!("stop on {}", signal?)),
        }
    })?;
    println!("{}", table(&report.rows));
    print_details(&report, &plan);
    if let Some(path) = &plan.json {
        let mut file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
        serde_json::to_writer_pretty(&mut file, &report).context("serialise the report")?;
        eprintln!("hoard-bench: wrote {}", path.display());
    }
    Ok(())
}

/// The first of SIGINT and SIGTERM, by name.
async fn stop_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listen for SIGTERM")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.map(|()| "SIGINT").context("listen for SIGINT"),
        _ = term.recv() => Ok("SIGTERM"),
    }
}

/// A hoard worker with a `back` and a `through` mount on Garage, and a client of it.
#[derive(Debug)]
struct HoardWriter {
    client: Client,
    part_size: u64,
    worker: ChildGuard,
}

/// Start one worker whose journal is `dir/journal`.
async fn start_worker(dir: &Path, garage: &Garage, plan: &CheckpointPlan) -> anyhow::Result<HoardWriter> {
    let (addr, metrics) = (free_addr()?, free_addr()?);
    let token = format!("hoard-bench-{}-{:016x}", std::process::id(), rand::random::<u64>());
    let journal = dir.join("journal");
    let bucket = &garage.bucket;
    let text = format!(
        "token = \"{token}\"\n{}\n[[workers]]\nid = \"w1\"\naddr = \"{addr}\"\nmetrics = \"{metrics}\"\n\
         journal_dir = {:?}\n\n[[mounts]]\nname = \"back\"\nufs = \"s3://{bucket}/back\"\nwrite_mode = \"back\"\n\n\
         [[mounts]]\nname = \"through\"\nufs = \"s3://{bucket}/through\"\nwrite_mode = \"through\"\n",
        garage.s3_toml(),
        journal.display().to_string(),
    );
    let config = ClusterConfig::parse(&text).context("check the generated cluster config")?;
    let config_path = dir.join("cluster.toml");
    std::fs::write(&config_path, &text).context("write the cluster config")?;
    let mut command = Command::new(&plan.hoard_bin);
    command
        .args(["worker", "--id", "w1", "--cluster"])
        .arg(&config_path)
        .env("HOARD_LOG", "warn");
    let mut worker = ChildGuard::spawn("hoard worker", command, &dir.join("worker.log"))?;
    worker.wait_listening(addr, Duration::from_secs(30)).await?;
    let part_size = config.worker.part_size.as_u64();
    let client = Client::builder()
        .cluster(config)
        .client_name("hoard-bench-checkpoint")
        .build()
        .context("build the client")?;
    Ok(HoardWriter {
        client,
        part_size,
        worker,
    })
}

/// Seconds of each system in each run.
#[derive(Debug, Default)]
struct Samples {
    local: Vec<f64>,
    back_ack: Vec<f64>,
    back_sync: Vec<f64>,
    through: Vec<f64>,
    direct: Vec<f64>,
}

async fn measure(plan: &CheckpointPlan) -> anyhow::Result<CheckpointReport> {
    let environment = Environment::detect();
    let dir = tempfile::Builder::new()
        .prefix("hoard-bench-checkpoint-")
        .tempdir_in(&plan.dir)
        .with_context(|| format!("create a directory in {}", plan.dir.display()))?;
    let garage = Garage::start(&dir.path().join("garage")).await?;
    let hoard = start_worker(dir.path(), &garage, plan).await?;
    let store = Arc::new(
        S3UnderStore::new(garage.bucket.clone(), "direct".into(), &garage.s3_config())
            .await
            .context("open the bucket")?,
    );
    let shards = Shards::new(plan.writers, plan.shard_bytes);
    eprintln!(
        "hoard-bench: {} writers x {} MiB, {} run(s); journal and local files in {}",
        plan.writers,
        plan.shard_bytes >> 20,
        plan.runs,
        dir.path().display()
    );
    let mut s = Samples::default();
    for run in 0..u64::from(plan.runs) {
        let limit = plan.time_limit;
        let tag = |system: u64| shards.tagged(run << 4 | system);
        let local_dir = dir.path().join(format!("local/run-{run}"));
        let (local_shards, back_shards, through_shards, s3_shards) = (tag(1), tag(2), tag(3), tag(4));
        flush_dirty_pages()?;
        let local = phase(limit, "local disk", writers::local_disk(&local_dir, &local_shards)).await?;
        std::fs::remove_dir_all(&local_dir).context("remove the local-disk files")?;
        flush_dirty_pages()?;
        let back_dir = format!("/back/run-{run}");
        let back = phase(
            limit,
            "hoard back",
            writers::hoard(&hoard.client, &back_dir, &back_shards),
        )
        .await
        .with_context(|| format!("worker log:\n{}", hoard.worker.log_tail()))?;
        let sync_started = std::time::Instant::now();
        let sync = async { hoard.client.sync(&back_dir).await.context("sync") };
        phase(limit, "back-mode sync", sync).await?;
        let back_sync = back + sync_started.elapsed();
        flush_dirty_pages()?;
        let through_dir = format!("/through/run-{run}");
        let through = phase(
            limit,
            "hoard through",
            writers::hoard(&hoard.client, &through_dir, &through_shards),
        )
        .await
        .with_context(|| format!("worker log:\n{}", hoard.worker.log_tail()))?;
        flush_dirty_pages()?;
        let s3_prefix = format!("run-{run}");
        let direct = writers::direct_s3(&store, &s3_prefix, &s3_shards, hoard.part_size);
        let direct = phase(limit, "direct S3", direct).await?;
        eprintln!(
            "hoard-bench: run {run}: local disk {:.2} s, back {:.2} s (synced {:.2} s), through {:.2} s, S3 {:.2} s",
            local.as_secs_f64(),
            back.as_secs_f64(),
            back_sync.as_secs_f64(),
            through.as_secs_f64(),
            direct.as_secs_f64()
        );
        s.local.push(local.as_secs_f64());
        s.back_ack.push(back.as_secs_f64());
        s.back_sync.push(back_sync.as_secs_f64());
        s.through.push(through.as_secs_f64());
        s.direct.push(direct.as_secs_f64());
    }
    let rows = rows(&s, shards.total_bytes());
    let params = serde_json::json!({
        "writers": plan.writers, "shard_bytes": plan.shard_bytes, "runs": plan.runs,
        "piece_bytes": writers::PIECE_BYTES, "part_size": hoard.part_size, "quick": plan.quick,
        "dir": plan.dir,
    });
    Ok(CheckpointReport {
        environment,
        params,
        local_disk_seconds: s.local,
        back_ack_seconds: s.back_ack,
        back_sync_seconds: s.back_sync,
        through_seconds: s.through,
        direct_s3_seconds: s.direct,
        rows,
    })
}

/// Write every dirty page of the machine back (`sync`), untimed, so that no phase pays for the
/// writeback of the one before it (Garage's data and the journal share the disk with the
/// local-disk peer).
fn flush_dirty_pages() -> anyhow::Result<()> {
    let status = Command::new("sync").status().context("run sync")?;
    anyhow::ensure!(status.success(), "sync failed: {status}");
    Ok(())
}

/// `fut`, failing when it takes longer than `limit`.
async fn phase<T>(limit: Duration, name: &str, fut: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .with_context(|| format!("the {name} phase took longer than {limit:?} (--time-limit)"))?
        .with_context(|| format!("measure {name}"))
}

/// The median of some seconds.
fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The comparison rows, in MiB/s of the median run.
fn rows(s: &Samples, total_bytes: u64) -> Vec<Row> {
    let mib_s = |xs: &[f64]| total_bytes as f64 / f64::from(1u32 << 20) / median(xs);
    let (local, direct) = (mib_s(&s.local), mib_s(&s.direct));
    let (disk, s3) = ("local disk + fsync", "S3 multipart, direct");
    #[rustfmt::skip] // A table reads best one row per line.
    let specs = [
        ("checkpoint save, back: every close returned (MiB/s)", mib_s(&s.back_ack), disk, local, Target::AtLeast(0.90)),
        ("checkpoint save, through: every close returned (MiB/s)", mib_s(&s.through), s3, direct, Target::None),
        ("diag: back, until sync returned (MiB/s)", mib_s(&s.back_sync), s3, direct, Target::None),
        ("diag: back, every close returned (MiB/s)", mib_s(&s.back_ack), s3, direct, Target::None),
    ];
    specs
        .into_iter()
        .map(|(metric, hoard, peer_name, peer, target)| Row::new(metric, hoard, peer_name, peer, target))
        .collect()
}

fn print_details(report: &CheckpointReport, plan: &CheckpointPlan) {
    let e = &report.environment;
    println!(
        "{} | {} CPUs ({}) | kernel {} | loopback | {} writers x {} MiB",
        e.date,
        e.cpus,
        e.cpu_model,
        e.kernel,
        plan.writers,
        plan.shard_bytes >> 20
    );
    let line = |name: &str, xs: &[f64]| {
        let runs: Vec<String> = xs.iter().map(|x| format!("{x:.2}")).collect();
        println!("{name:<32} seconds per run: {}", runs.join(" "));
    };
    line("local disk + fsync", &report.local_disk_seconds);
    line("hoard back (closes returned)", &report.back_ack_seconds);
    line("hoard back (sync returned)", &report.back_sync_seconds);
    line("hoard through", &report.through_seconds);
    line("S3 multipart, direct", &report.direct_s3_seconds);
}
