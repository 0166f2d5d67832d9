//! `hoard-bench read`: warm reads over TCP and over shared memory, side by side with memcached
//! (4 KiB latency), the loopback TCP ceiling (iperf3) and single-threaded `memcpy` (sequential
//! throughput), in one run, reported as ratios.
//!
//! Latency is measured in alternating rounds (hoard, memcached, then three hoard diagnostics), so
//! slow spells of this shared machine hit every system alike instead of whichever ran last.

use anyhow::Context;

use crate::cli::{ReadPlan, RuntimeMode};
use crate::hoard_side::HoardFixture;
use crate::latency::LatencySummary;
use crate::memcached::{self, Memcached};
use crate::report::{Environment, ReadReport, Row, Target, table, write_json};
use crate::throughput::ThroughputSummary;
use crate::{iperf, throughput};

mod latency_phase;

use latency_phase::{Latencies, latency_phase};

/// Run the benchmark, print the table, and write the JSON file if asked.
///
/// # Errors
/// When a system cannot be started or a measurement fails.
pub fn run(plan: ReadPlan) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("hoard-bench: warning: this is a debug build of the harness; build it with --release");
    }
    let runtime = match plan.runtime {
        RuntimeMode::CurrentThread => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        RuntimeMode::Spawned | RuntimeMode::BlockOn => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    }
    .context("start the tokio runtime")?;
    let report = runtime.block_on(async {
        // On SIGINT or SIGTERM the benchmark's future is dropped, and with it the guards of the
        // processes it started.
        tokio::select! {
            report = start_and_measure(&plan) => report,
            signal = stop_signal() => Err(anyhow::anyhow!("stop on {}", signal?)),
        }
    })?;
    println!("{}", table(&report.rows));
    print_details(&report);
    if let Some(path) = &plan.json {
        write_json(&report, path)?;
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

/// Start the systems, then measure them where `plan.runtime` says.
async fn start_and_measure(plan: &ReadPlan) -> anyhow::Result<ReadReport> {
    let systems = start_systems(plan).await?;
    match plan.runtime {
        // `Client::load` is not `Send` (see docs/benchmarks.md): start the systems first.
        RuntimeMode::Spawned => {
            let task = tokio::spawn(measure_all(plan.clone(), systems));
            // Abort the task (dropping its process guards) if this future is dropped.
            let abort = task.abort_handle();
            let _abort_on_drop = AbortOnDrop(abort);
            task.await.context("join the benchmark task")?
        }
        RuntimeMode::BlockOn | RuntimeMode::CurrentThread => measure_all(plan.clone(), systems).await,
    }
}

/// Aborts a task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The systems under test, started and warm.
#[derive(Debug)]
struct Systems {
    dir: tempfile::TempDir,
    hoard: HoardFixture,
    mc: Memcached,
}

/// Write the file, start and preload the worker, start memcached.
async fn start_systems(plan: &ReadPlan) -> anyhow::Result<Systems> {
    let dir = tempfile::Builder::new()
        .prefix("hoard-bench-")
        .tempdir()
        .context("create a temporary directory")?;
    eprintln!(
        "hoard-bench: writing a {} MiB file and starting a worker",
        plan.size_bytes >> 20
    );
    let hoard = HoardFixture::start(dir.path(), plan).await?;
    eprintln!(
        "hoard-bench: preloaded in {:.2} s; starting memcached",
        hoard.load.elapsed.as_secs_f64()
    );
    let mc = Memcached::start(dir.path()).await?;
    Ok(Systems { dir, hoard, mc })
}

/// The systems are measured one after the other; child processes die with their guards.
async fn measure_all(plan: ReadPlan, systems: Systems) -> anyhow::Result<ReadReport> {
    let environment = Environment::detect();
    let Systems { dir, hoard, mut mc } = systems;
    let plan = &plan;
    let preload_seconds = hoard.load.elapsed.as_secs_f64();
    eprintln!(
        "hoard-bench: 4 KiB latency, {} ops each in {} rounds",
        plan.ops, plan.rounds
    );
    let lat = latency_phase(plan, &hoard, &mut mc)
        .await
        .with_context(|| format!("measure latency (worker log tail:\n{})", hoard.worker_log()))?;
    drop(mc);
    eprintln!(
        "hoard-bench: loopback TCP ceiling (iperf3, {} s per run)",
        plan.iperf_seconds
    );
    let one = iperf::loopback_bits_per_second(dir.path(), plan.iperf_seconds, 1).await? / 1e9;
    let two = iperf::loopback_bits_per_second(dir.path(), plan.iperf_seconds, 2).await? / 1e9;
    eprintln!(
        "hoard-bench: sequential reads, {} passes of {} MiB",
        plan.runs,
        plan.size_bytes >> 20
    );
    let seq = throughput_phase(plan, &hoard)
        .await
        .with_context(|| format!("measure throughput (worker log tail:\n{})", hoard.worker_log()))?;
    let rows = rows(&lat, &seq, one, two);
    let params = serde_json::json!({
        "size_bytes": plan.size_bytes, "ops": plan.ops, "warmup_ops": plan.warmup_ops, "rounds": plan.rounds,
        "runs": plan.runs, "range_bytes": plan.range_bytes, "iperf_seconds": plan.iperf_seconds,
        "runtime": plan.runtime, "quick": plan.quick, "memcached_keys": memcached::KEYS,
        "truncated_latency_rounds": lat.truncated_rounds,
    });
    Ok(ReadReport {
        environment,
        params,
        preload_seconds,
        hoard_read_4k: lat.read,
        hoard_shm_read_4k: lat.shm_read,
        hoard_client_read_4k: lat.client_read,
        hoard_stat: lat.stat,
        hoard_wire_read_4k: lat.wire,
        memcached_get_4k: lat.memcached,
        hoard_sequential: seq.default,
        hoard_sequential_shm: seq.shm,
        memcpy: seq.memcpy,
        hoard_sequential_no_verify: seq.no_verify,
        hoard_sequential_one_request_calls: seq.one_request_calls,
        iperf3_one_stream_gbit_s: one,
        iperf3_two_streams_gbit_s: two,
        rows,
    })
}

/// The sequential passes of one run.
#[derive(Debug)]
struct Throughputs {
    default: ThroughputSummary,
    shm: ThroughputSummary,
    memcpy: ThroughputSummary,
    no_verify: ThroughputSummary,
    one_request_calls: ThroughputSummary,
}

/// Sequential passes: `--range` calls with the default client, the same without checksums, and
/// calls of one request each (`client.max_request_bytes`: no reassembly in the client).
async fn throughput_phase(plan: &ReadPlan, hoard: &HoardFixture) -> anyhow::Result<Throughputs> {
    let (range, runs, limit) = (plan.range_bytes, plan.runs, plan.time_limit);
    let default = throughput::measure(&hoard.file, hoard, range, runs, limit).await?;
    let shm = throughput::measure(&hoard.shm_file, hoard, range, runs, limit)
        .await
        .context("measure throughput over shared memory")?;
    let size = hoard.meta.size;
    let memcpy = tokio::task::spawn_blocking(move || throughput::memcpy(size, range, runs, limit))
        .await
        .context("join the memcpy passes")?;
    let no_verify = hoard.client_with(|c| c.client.verify_checksums = false)?;
    let no_verify = no_verify
        .open(&hoard.path)
        .await
        .context("open the file without checksums")?;
    let no_verify = throughput::measure(&no_verify, hoard, range, runs, limit)
        .await
        .context("measure throughput without checksums")?;
    let one_request = hoard.client.config().client.max_request_bytes.as_u64();
    let one_request_calls = throughput::measure(&hoard.file, hoard, one_request, runs, limit)
        .await
        .context("measure throughput in one-request calls")?;
    Ok(Throughputs {
        default,
        shm,
        memcpy,
        no_verify,
        one_request_calls,
    })
}

/// The comparison rows: targets first, then diagnostics.
fn rows(lat: &Latencies, seq: &Throughputs, one: f64, two: f64) -> Vec<Row> {
    let (m, mc, ip) = (&lat.memcached, "memcached GET", "iperf3 1 stream");
    let (cp, tcp) = ("memcpy 1 thread", "hoard over TCP");
    let calls = format!(
        "diag: seq read in {} MiB calls, median (Gbit/s)",
        seq.one_request_calls.range_bytes >> 20
    );
    #[rustfmt::skip] // A table reads best one row per line.
    let specs = [
        ("4 KiB read p50 (µs)", lat.read.p50_us, mc, m.p50_us, Target::AtMost(1.0)),
        ("4 KiB read p99 (µs)", lat.read.p99_us, mc, m.p99_us, Target::AtMost(1.0)),
        ("4 KiB read p99.9 (µs)", lat.read.p999_us, mc, m.p999_us, Target::None),
        ("sequential read, median pass (Gbit/s)", seq.default.median_gbit_s, ip, one, Target::AtLeast(0.8)),
        ("sequential read, best pass (Gbit/s)", seq.default.best_gbit_s, ip, one, Target::None),
        ("shm: 4 KiB read p50 (µs)", lat.shm_read.p50_us, mc, m.p50_us, Target::AtMost(0.1)),
        ("shm: 4 KiB read p99 (µs)", lat.shm_read.p99_us, mc, m.p99_us, Target::AtMost(0.1)),
        ("shm: sequential read, median pass (Gbit/s)", seq.shm.median_gbit_s, cp, seq.memcpy.median_gbit_s, Target::AtLeast(0.8)),
        ("shm: sequential read, best pass (Gbit/s)", seq.shm.best_gbit_s, cp, seq.memcpy.best_gbit_s, Target::None),
        ("diag: shm 4 KiB read p50 vs TCP (µs)", lat.shm_read.p50_us, tcp, lat.read.p50_us, Target::None),
        ("diag: Client::read (stat + read) p50 (µs)", lat.client_read.p50_us, mc, m.p50_us, Target::None),
        ("diag: Client::read (stat + read) p99 (µs)", lat.client_read.p99_us, mc, m.p99_us, Target::None),
        ("diag: stat alone p50 (µs)", lat.stat.p50_us, mc, m.p50_us, Target::None),
        ("diag: wire read, no client library, p50 (µs)", lat.wire.p50_us, mc, m.p50_us, Target::None),
        ("diag: wire read, no client library, p99 (µs)", lat.wire.p99_us, mc, m.p99_us, Target::None),
        ("diag: seq read, no checksums, median (Gbit/s)", seq.no_verify.median_gbit_s, ip, one, Target::None),
        (calls.as_str(), seq.one_request_calls.median_gbit_s, ip, one, Target::None),
        ("diag: seq read, median (Gbit/s)", seq.default.median_gbit_s, "iperf3 2 streams", two, Target::None),
    ];
    specs
        .into_iter()
        .map(|(metric, hoard, peer_name, peer, target)| Row::new(metric, hoard, peer_name, peer, target))
        .collect()
}

/// The numbers behind the table.
fn print_details(report: &ReadReport) {
    let e = &report.environment;
    println!(
        "{} | {} CPUs ({}) | kernel {} | loopback",
        e.date, e.cpus, e.cpu_model, e.kernel
    );
    let lat = |name: &str, s: &LatencySummary| {
        println!(
            "{name:<34} ops {:>6}  p50 {:>6.1}  p99 {:>6.1}  p99.9 {:>6.1}  mean {:>6.1}  max {:>7.1} µs  \
             per op: CPU µs client {:.1} server {:.1}, switches client {:.1} server {:.1}",
            s.ops,
            s.p50_us,
            s.p99_us,
            s.p999_us,
            s.mean_us,
            s.max_us,
            s.client_cpu_us_per_op,
            s.server_cpu_us_per_op,
            s.client_switches_per_op,
            s.server_switches_per_op
        );
    };
    lat("hoard OpenFile::read 4 KiB", &report.hoard_read_4k);
    lat("hoard OpenFile::read 4 KiB (shm)", &report.hoard_shm_read_4k);
    lat("memcached GET 4 KiB", &report.memcached_get_4k);
    lat("hoard Client::read 4 KiB (+stat)", &report.hoard_client_read_4k);
    lat("hoard Client::stat", &report.hoard_stat);
    lat("hoard wire read 4 KiB (no stat)", &report.hoard_wire_read_4k);
    let seq = |name: &str, s: &ThroughputSummary| {
        let passes: Vec<String> = s.pass_seconds.iter().map(|p| format!("{p:.3}")).collect();
        println!(
            "{name:<34} best {:.2} GiB/s ({:.1} Gbit/s)  median {:.2} GiB/s ({:.1} Gbit/s)  passes [s]: {}",
            s.best_gib_s,
            s.best_gbit_s,
            s.median_gib_s,
            s.median_gbit_s,
            passes.join(" ")
        );
    };
    seq("hoard sequential (checksums on)", &report.hoard_sequential);
    seq("hoard sequential (shared memory)", &report.hoard_sequential_shm);
    seq("memcpy, one thread", &report.memcpy);
    seq("hoard sequential (checksums off)", &report.hoard_sequential_no_verify);
    seq(
        "hoard sequential (one-request calls)",
        &report.hoard_sequential_one_request_calls,
    );
    println!(
        "iperf3 loopback: {:.1} Gbit/s one stream, {:.1} Gbit/s two streams; preload {:.2} s",
        report.iperf3_one_stream_gbit_s, report.iperf3_two_streams_gbit_s, report.preload_seconds
    );
}
