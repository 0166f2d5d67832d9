//! `hoard-bench fuse`: the FUSE mount under fio, side by side in one run with the same files on
//! local disk and with the native client the mount is built on.
//!
//! Sequential 1 MiB reads and random 4 KiB reads run cold (a new worker process, so hoard's
//! cache is empty, and the kernel's caches dropped) and warm (every byte in the worker's memory
//! for hoard; in the page cache for local disk). One job or task per file, one read outstanding
//! each, for every system. Sequential reads go through the default mount (kernel page cache on,
//! dropped before each run); random reads through a `--no-page-cache` mount, so every read
//! reaches hoard. Then a directory of many entries is listed through the mount, the CLI and on
//! local disk. Every read through hoard is checked to have been served by the worker.

mod cpu;
mod fio;
mod listing;
mod native;
mod setup;

use std::future::Future;
use std::path::PathBuf;

use anyhow::{Context, ensure};
use serde::Serialize;

use crate::cli::FusePlan;
use crate::report::{Environment, Row, Target, table};
use fio::{FioResult, Pattern};
use listing::ListingReport;
use setup::{Fixture, MOUNT};

/// A cold and a warm run of one system.
#[derive(Debug, Clone, Serialize)]
pub struct ColdWarm {
    /// After a new worker process and dropped kernel caches.
    pub cold: FioResult,
    /// With the data in hoard's cache (or the page cache, for local disk).
    pub warm: FioResult,
}

/// One access pattern on every system.
#[derive(Debug, Clone, Serialize)]
pub struct Systems {
    /// Through the mount.
    pub mount: ColdWarm,
    /// The same files on local disk.
    pub local: ColdWarm,
    /// The native client on the same cluster.
    pub native: ColdWarm,
}

/// Everything one `hoard-bench fuse` run measured.
#[derive(Debug, Serialize)]
pub struct FuseReport {
    /// When and where.
    pub environment: Environment,
    /// The parameters used.
    pub params: serde_json::Value,
    /// Whether cold runs dropped the kernel's caches (needs root).
    pub kernel_caches_dropped: bool,
    /// Sequential 1 MiB reads.
    pub sequential: Systems,
    /// Diagnostic: warm sequential reads through the `--no-page-cache` mount.
    pub sequential_no_page_cache_warm: FioResult,
    /// Random 4 KiB reads.
    pub random: Systems,
    /// Listings of the large directory.
    pub listing: ListingReport,
    /// The comparison rows.
    pub rows: Vec<Row>,
}

/// Run the benchmark, print the tables, and write the JSON file if asked.
///
/// # Errors
/// When a system cannot be started or a measurement fails.
pub fn run(plan: FusePlan) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("hoard-bench: warning: this is a debug build of the harness; build it with --release");
    }
    crate::procs::require_tool("fio", "fio")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let report = runtime.block_on(async {
        // On SIGINT or SIGTERM the measuring future is dropped, and with it the mounts (which
        // unmount) and the worker.
        tokio::select! {
            report = measure(&plan) => report,
            signal = stop_signal() => Err(anyhow::anyhow!("stop on {}", signal?)),
        }
    })?;
    print_report(&report);
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

/// Start the systems and measure them one after the other.
async fn measure(plan: &FusePlan) -> anyhow::Result<FuseReport> {
    eprintln!(
        "hoard-bench: writing {} files of {} MiB and {} directory entries; starting a worker and two mounts",
        plan.files,
        plan.file_bytes >> 20,
        plan.entries
    );
    let mut fx = Fixture::start(plan).await?;
    if !fx.can_drop_caches {
        eprintln!(
            "hoard-bench: warning: cannot drop the kernel's caches (not root?): cold runs are only cold for hoard"
        );
    }
    let environment = Environment::detect();
    eprintln!("hoard-bench: sequential 1 MiB reads");
    let (sequential, sequential_no_page_cache_warm) = sequential_phase(&mut fx, plan)
        .await
        .with_context(|| format!("measure sequential reads (worker log tail:\n{})", fx.worker_log()))?;
    eprintln!(
        "hoard-bench: random 4 KiB reads, {} s per run",
        plan.random_run.as_secs()
    );
    let random = random_phase(&mut fx, plan)
        .await
        .with_context(|| format!("measure random reads (worker log tail:\n{})", fx.worker_log()))?;
    eprintln!("hoard-bench: listing {} entries", plan.entries);
    let listing = listing::measure(&mut fx, &plan.hoard_bin, plan.entries).await?;
    let rows = rows(&sequential, &random);
    let params = serde_json::json!({
        "files": plan.files, "file_bytes": plan.file_bytes, "random_seconds": plan.random_run.as_secs(),
        "entries": plan.entries, "quick": plan.quick, "fio_jobs": plan.files, "fio_ioengine": "psync",
        "fio_iodepth": 1, "mount_args": plan.mount_args,
    });
    Ok(FuseReport {
        environment,
        params,
        kernel_caches_dropped: fx.can_drop_caches,
        sequential,
        sequential_no_page_cache_warm,
        random,
        listing,
        rows,
    })
}

/// The files as each system names them.
struct Paths {
    local: Vec<PathBuf>,
    cached: Vec<PathBuf>,
    direct: Vec<PathBuf>,
    hoard: Vec<String>,
}

impl Paths {
    fn of(fx: &Fixture) -> Paths {
        Paths {
            local: fx.files.iter().map(|f| fx.ufs.join(f)).collect(),
            cached: fx.files.iter().map(|f| fx.cached.join(f)).collect(),
            direct: fx.files.iter().map(|f| fx.direct.join(f)).collect(),
            hoard: fx.files.iter().map(|f| format!("/{MOUNT}/{f}")).collect(),
        }
    }
}

/// Sequential reads: local disk, the mount, the native client; cold then warm each.
async fn sequential_phase(fx: &mut Fixture, plan: &FusePlan) -> anyhow::Result<(Systems, FioResult)> {
    let (p, size) = (Paths::of(fx), plan.file_bytes);
    fx.drop_caches()?;
    let local_cold = with_cpu(fx, fio::run(&p.local, size, Pattern::Sequential)).await?;
    let local_warm = with_cpu(fx, fio::run(&p.local, size, Pattern::Sequential)).await?;
    fx.cold().await?;
    let mount_cold = through_hoard(fx, fio::run(&p.cached, size, Pattern::Sequential)).await?;
    fx.drop_caches()?;
    let mount_warm = through_hoard(fx, fio::run(&p.cached, size, Pattern::Sequential)).await?;
    fx.drop_caches()?;
    let direct_warm = through_hoard(fx, fio::run(&p.direct, size, Pattern::Sequential)).await?;
    // Untimed: every byte through the client and through the mount equals the file on disk.
    native::sequential(&fx.client, &p.hoard, Some(&p.local)).await?;
    same_bytes(&p.cached[0], &p.local[0]).await?;
    let native_warm = through_hoard(fx, native::sequential(&fx.client, &p.hoard, None)).await?;
    fx.cold().await?;
    let native_cold = through_hoard(fx, native::sequential(&fx.client, &p.hoard, None)).await?;
    let systems = Systems {
        mount: ColdWarm {
            cold: mount_cold,
            warm: mount_warm,
        },
        local: ColdWarm {
            cold: local_cold,
            warm: local_warm,
        },
        native: ColdWarm {
            cold: native_cold,
            warm: native_warm,
        },
    };
    Ok((systems, direct_warm))
}

/// Random reads: local disk, the `--no-page-cache` mount, the native client; cold then warm.
async fn random_phase(fx: &mut Fixture, plan: &FusePlan) -> anyhow::Result<Systems> {
    let (p, size, random) = (Paths::of(fx), plan.file_bytes, Pattern::Random(plan.random_run));
    fx.drop_caches()?;
    let local_cold = with_cpu(fx, fio::run(&p.local, size, random)).await?;
    fio::run(&p.local, size, Pattern::Sequential).await?; // into the page cache
    let local_warm = with_cpu(fx, fio::run(&p.local, size, random)).await?;
    fx.cold().await?;
    let mount_cold = through_hoard(fx, fio::run(&p.direct, size, random)).await?;
    for path in &p.hoard {
        fx.client
            .load(path, &|_| {})
            .await
            .with_context(|| format!("load {path}"))?;
    }
    fx.drop_caches()?;
    let mount_warm = through_hoard(fx, fio::run(&p.direct, size, random)).await?;
    let native_warm = through_hoard(fx, native::random(&fx.client, &p.hoard, plan.random_run)).await?;
    fx.cold().await?;
    let native_cold = through_hoard(fx, native::random(&fx.client, &p.hoard, plan.random_run)).await?;
    Ok(Systems {
        mount: ColdWarm {
            cold: mount_cold,
            warm: mount_warm,
        },
        local: ColdWarm {
            cold: local_cold,
            warm: local_warm,
        },
        native: ColdWarm {
            cold: native_cold,
            warm: native_warm,
        },
    })
}

/// Run a read through hoard and check that the worker served (at least 90% of) what it read:
/// a run the client answered from its under-store fallback would measure something else.
async fn through_hoard(
    fx: &Fixture,
    run: impl Future<Output = anyhow::Result<FioResult>>,
) -> anyhow::Result<FioResult> {
    let before = fx.bytes_served().await?;
    let result = with_cpu(fx, run).await?;
    let served = fx.bytes_served().await? - before;
    ensure!(
        served >= result.io_bytes as f64 * 0.9,
        "the worker served {served} bytes of the {} read: the reads did not go through it",
        result.io_bytes
    );
    Ok(result)
}

/// Run a read and record the CPU the machine, the worker and the mounts used meanwhile.
async fn with_cpu(fx: &Fixture, run: impl Future<Output = anyhow::Result<FioResult>>) -> anyhow::Result<FioResult> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = fx.cpu_sample();
    let mut result = run.await?;
    result.cpu = start.until(fx.cpu_sample(), cpus);
    Ok(result)
}

/// `cmp` of two files.
async fn same_bytes(a: &std::path::Path, b: &std::path::Path) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("cmp")
        .arg(a)
        .arg(b)
        .status()
        .await
        .context("run cmp")?;
    ensure!(status.success(), "{} and {} differ", a.display(), b.display());
    Ok(())
}

/// The target rows: sequential warm against the native client (design target ≥ 0.70), the rest
/// for information.
fn rows(seq: &Systems, random: &Systems) -> Vec<Row> {
    let native = "native client";
    #[rustfmt::skip] // A table reads best one row per line.
    let specs = [
        ("mount seq 1 MiB read, warm (MiB/s)", seq.mount.warm.mib_s(), native, seq.native.warm.mib_s(), Target::AtLeast(0.7)),
        ("mount seq 1 MiB read, cold (MiB/s)", seq.mount.cold.mib_s(), native, seq.native.cold.mib_s(), Target::None),
        ("mount 4 KiB random read, warm (IOPS)", random.mount.warm.iops, native, random.native.warm.iops, Target::None),
        ("mount 4 KiB random read, cold (IOPS)", random.mount.cold.iops, native, random.native.cold.iops, Target::None),
        ("mount seq 1 MiB read, warm (MiB/s)", seq.mount.warm.mib_s(), "local disk, page cache", seq.local.warm.mib_s(), Target::None),
        ("mount 4 KiB random read, warm (IOPS)", random.mount.warm.iops, "local disk, page cache", random.local.warm.iops, Target::None),
    ];
    specs
        .into_iter()
        .map(|(metric, hoard, peer_name, peer, target)| Row::new(metric, hoard, peer_name, peer, target))
        .collect()
}

/// CPU per run: how busy the machine was, and the worker's and the mounts' share, per GiB read.
fn print_cpu(r: &FuseReport) {
    println!("| run | cache | busy CPUs | worker CPU s/GiB | mount CPU s/GiB | native client CPU s/GiB |");
    println!("|---|---|---:|---:|---:|---:|");
    let runs = [
        ("seq, mount", &r.sequential.mount),
        ("seq, local disk", &r.sequential.local),
        ("seq, native client", &r.sequential.native),
        ("random, mount", &r.random.mount),
        ("random, local disk", &r.random.local),
        ("random, native client", &r.random.native),
    ];
    for (name, cw) in runs {
        for (state, f) in [("cold", &cw.cold), ("warm", &cw.warm)] {
            let gib = f.io_bytes as f64 / f64::from(1u32 << 30);
            println!(
                "| {name} | {state} | {:.2} | {:.2} | {:.2} | {:.2} |",
                f.cpu.busy_cpus,
                f.cpu.worker_s / gib,
                f.cpu.mount_s / gib,
                f.cpu.client_s / gib
            );
        }
    }
    println!();
}

/// The tables: every system side by side, the target rows, the listings.
fn print_report(r: &FuseReport) {
    println!("| workload | cache | mount | local disk | native client | mount/local | mount/native |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    type Value = fn(&FioResult) -> f64;
    let lines: [(&str, &Systems, Value); 2] = [
        ("sequential 1 MiB read (MiB/s)", &r.sequential, FioResult::mib_s),
        ("random 4 KiB read (IOPS)", &r.random, |f| f.iops),
    ];
    for (name, s, value) in lines {
        for (state, m, l, n) in [
            ("cold", &s.mount.cold, &s.local.cold, &s.native.cold),
            ("warm", &s.mount.warm, &s.local.warm, &s.native.warm),
        ] {
            let (m, l, n) = (value(m), value(l), value(n));
            println!(
                "| {name} | {state} | {m:.0} | {l:.0} | {n:.0} | {:.2} | {:.2} |",
                m / l,
                m / n
            );
        }
    }
    println!(
        "\ndiag: warm sequential 1 MiB read through the --no-page-cache mount: {:.0} MiB/s\n",
        r.sequential_no_page_cache_warm.mib_s()
    );
    print_cpu(r);
    println!("{}", table(&r.rows));
    let l = &r.listing;
    println!(
        "| listing {} entries (s) | mount | hoard ls (CLI) | local disk |",
        l.entries
    );
    println!("|---|---:|---:|---:|");
    println!(
        "| `ls -f \\| wc -l`, first | {:.2} | {:.2} | {:.2} |",
        l.mount_ls_f.first_s, l.cli_ls.first_s, l.local_ls_f.first_s
    );
    println!(
        "| `ls -f \\| wc -l`, again | {:.2} | {:.2} | {:.2} |",
        l.mount_ls_f.again_s, l.cli_ls.again_s, l.local_ls_f.again_s
    );
    println!(
        "| `ls -l \\| wc -l`, after `ls -f` | {:.2} | - | {:.2} |",
        l.mount_ls_l_s, l.local_ls_l_s
    );
    let e = &r.environment;
    println!(
        "\n{} | {} CPUs ({}) | kernel {} | kernel caches dropped for cold runs: {}",
        e.date, e.cpus, e.cpu_model, e.kernel, r.kernel_caches_dropped
    );
}
