//! `hoard-bench read`: warm reads over TCP, side by side with memcached (4 KiB latency) and the
//! loopback TCP ceiling (iperf3, sequential throughput), in one run, reported as ratios.
//!
//! Latency is measured in alternating rounds (hoard, memcached, then two hoard diagnostics), so
//! slow spells of this shared machine hit every system alike instead of whichever ran last.

use std::time::{Duration, Instant};

use anyhow::Context;
use rand::{Rng, SeedableRng};

use crate::cli::{IO_BYTES, ReadPlan};
use crate::hoard_side::HoardFixture;
use crate::latency::{LatencyRecorder, LatencySummary, warm_up};
use crate::memcached::{self, Memcached};
use crate::report::{Environment, ReadReport, Row, Target, table, write_json};
use crate::{iperf, throughput};

/// Run the benchmark, print the table, and write the JSON file if asked.
///
/// # Errors
/// When a system cannot be started or a measurement fails.
pub fn run(plan: ReadPlan) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("hoard-bench: warning: this is a debug build of the harness; build it with --release");
    }
    let runtime = if plan.current_thread {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    }
    .context("start the tokio runtime")?;
    let report = runtime.block_on(measure_all(&plan))?;
    println!("{}", table(&report.rows));
    print_details(&report);
    if let Some(path) = &plan.json {
        write_json(&report, path)?;
        eprintln!("hoard-bench: wrote {}", path.display());
    }
    Ok(())
}

/// The four systems are measured one after the other; child processes die with their guards.
async fn measure_all(plan: &ReadPlan) -> anyhow::Result<ReadReport> {
    let environment = Environment::detect();
    let dir = tempfile::Builder::new().prefix("hoard-bench-").tempdir().context("create a temporary directory")?;
    eprintln!("hoard-bench: writing a {} MiB file and starting a worker", plan.size_bytes >> 20);
    let hoard = HoardFixture::start(dir.path(), plan).await?;
    let preload_seconds = hoard.load.elapsed.as_secs_f64();
    eprintln!("hoard-bench: preloaded in {preload_seconds:.2} s; starting memcached");
    let mut mc = Memcached::start(dir.path()).await?;
    eprintln!("hoard-bench: 4 KiB latency, {} ops each in {} rounds", plan.ops, plan.rounds);
    let lat = latency_phase(plan, &hoard, &mut mc).await.with_context(|| format!("measure latency (worker log tail:\n{})", hoard.worker_log()))?;
    drop(mc);
    eprintln!("hoard-bench: loopback TCP ceiling (iperf3, {} s per run)", plan.iperf_seconds);
    let one = iperf::loopback_bits_per_second(dir.path(), plan.iperf_seconds, 1).await? / 1e9;
    let two = iperf::loopback_bits_per_second(dir.path(), plan.iperf_seconds, 2).await? / 1e9;
    eprintln!("hoard-bench: sequential reads, {} passes of {} MiB", plan.runs, plan.size_bytes >> 20);
    let (range, runs, limit) = (plan.range_bytes, plan.runs, plan.time_limit);
    let seq = throughput::measure(&hoard.client, &hoard, range, runs, limit)
        .await
        .with_context(|| format!("measure throughput (worker log tail:\n{})", hoard.worker_log()))?;
    let no_verify_client = hoard.client_with(|c| c.client.verify_checksums = false)?;
    let seq_nv = throughput::measure(&no_verify_client, &hoard, range, runs, limit)
        .await
        .context("measure throughput without checksums")?;
    let rows = rows(&lat, &seq, &seq_nv, one, two);
    let params = serde_json::json!({
        "size_bytes": plan.size_bytes, "ops": plan.ops, "warmup_ops": plan.warmup_ops, "rounds": plan.rounds,
        "runs": plan.runs, "range_bytes": plan.range_bytes, "iperf_seconds": plan.iperf_seconds,
        "current_thread_runtime": plan.current_thread, "quick": plan.quick, "memcached_keys": memcached::KEYS,
        "truncated_latency_rounds": lat.truncated_rounds,
    });
    Ok(ReadReport {
        environment,
        params,
        preload_seconds,
        hoard_read_4k: lat.read,
        hoard_stat: lat.stat,
        hoard_wire_read_4k: lat.wire,
        memcached_get_4k: lat.memcached,
        hoard_sequential: seq,
        hoard_sequential_no_verify: seq_nv,
        iperf3_one_stream_gbit_s: one,
        iperf3_two_streams_gbit_s: two,
        rows,
    })
}

/// The latencies of one run.
#[derive(Debug)]
struct Latencies {
    read: LatencySummary,
    stat: LatencySummary,
    wire: LatencySummary,
    memcached: LatencySummary,
    truncated_rounds: u32,
}

/// Warm up (checking bytes), then time `plan.ops` operations of each kind in alternating rounds.
async fn latency_phase(plan: &ReadPlan, hoard: &HoardFixture, mc: &mut Memcached) -> anyhow::Result<Latencies> {
    let total = plan.warmup_ops + plan.ops;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6c61_74);
    let offsets: Vec<u64> = (0..total).map(|_| rng.random_range(0..plan.size_bytes / IO_BYTES) * IO_BYTES).collect();
    let keys: Vec<u64> = (0..total).map(|_| rng.random_range(0..memcached::KEYS)).collect();
    let wire = hoard.wire_reader().await?;
    let limit = plan.time_limit;
    warm_up(plan.warmup_ops, limit, &mut async |i| hoard.read_4k_checked(offsets[i as usize]).await).await?;
    warm_up(plan.warmup_ops, limit, &mut async |i| mc.get_checked(keys[i as usize]).await).await?;
    warm_up(plan.warmup_ops, limit, &mut async |i| wire.read_4k(offsets[i as usize]).await).await?;
    let mut recorders: [LatencyRecorder; 4] = std::array::from_fn(|_| LatencyRecorder::new());
    let [read, memc, stat, raw] = &mut recorders;
    let deadline = Instant::now() + limit;
    let per_round = plan.ops.div_ceil(u64::from(plan.rounds));
    let mut first = plan.warmup_ops;
    while first < total && Instant::now() < deadline {
        let n = per_round.min(total - first);
        read.run(first, n, deadline, &mut async |i| hoard.read_4k(offsets[i as usize]).await).await?;
        memc.run(first, n, deadline, &mut async |i| mc.client.get(keys[i as usize]).await.map(|_| ())).await?;
        stat.run(first, n, deadline, &mut async |_| hoard.stat().await).await?;
        raw.run(first, n, deadline, &mut async |i| wire.read_4k(offsets[i as usize]).await).await?;
        first += n;
    }
    let truncated_rounds = recorders.iter().map(|r| r.truncated_rounds).sum();
    if truncated_rounds > 0 || first < total {
        eprintln!("hoard-bench: warning: the latency phase reached its time limit ({limit:?}) and stopped early");
    }
    Ok(Latencies {
        read: recorders[0].summary()?,
        memcached: recorders[1].summary()?,
        stat: recorders[2].summary()?,
        wire: recorders[3].summary()?,
        truncated_rounds,
    })
}

/// The comparison rows: targets first, then diagnostics.
fn rows(
    lat: &Latencies,
    seq: &throughput::ThroughputSummary,
    seq_nv: &throughput::ThroughputSummary,
    one: f64,
    two: f64,
) -> Vec<Row> {
    let (r, m) = (&lat.read, &lat.memcached);
    let mc = "memcached GET";
    let ip = "iperf3 1 stream";
    vec![
        Row::new("4 KiB read p50 (µs)", r.p50_us, mc, m.p50_us, Target::AtMost(1.0)),
        Row::new("4 KiB read p99 (µs)", r.p99_us, mc, m.p99_us, Target::AtMost(1.0)),
        Row::new("4 KiB read p99.9 (µs)", r.p999_us, mc, m.p999_us, Target::None),
        Row::new("sequential read, median pass (Gbit/s)", seq.median_gbit_s, ip, one, Target::AtLeast(0.8)),
        Row::new("sequential read, best pass (Gbit/s)", seq.best_gbit_s, ip, one, Target::None),
        Row::new("diag: stat alone p50 (µs)", lat.stat.p50_us, mc, m.p50_us, Target::None),
        Row::new("diag: stat alone p99 (µs)", lat.stat.p99_us, mc, m.p99_us, Target::None),
        Row::new("diag: wire read, no stat, p50 (µs)", lat.wire.p50_us, mc, m.p50_us, Target::None),
        Row::new("diag: wire read, no stat, p99 (µs)", lat.wire.p99_us, mc, m.p99_us, Target::None),
        Row::new("diag: seq read, no checksums, median (Gbit/s)", seq_nv.median_gbit_s, ip, one, Target::None),
        Row::new("diag: seq read, median vs 2 streams (Gbit/s)", seq.median_gbit_s, "iperf3 2 streams", two, Target::None),
    ]
}

/// The numbers behind the table.
fn print_details(report: &ReadReport) {
    let e = &report.environment;
    println!("{} | {} CPUs ({}) | kernel {} | loopback", e.date, e.cpus, e.cpu_model, e.kernel);
    let lat = |name: &str, s: &LatencySummary| {
        println!(
            "{name:<34} ops {:>6}  p50 {:>7.1}  p99 {:>7.1}  p99.9 {:>7.1}  mean {:>7.1}  max {:>8.1} µs",
            s.ops, s.p50_us, s.p99_us, s.p999_us, s.mean_us, s.max_us
        );
    };
    lat("hoard Client::read 4 KiB", &report.hoard_read_4k);
    lat("memcached GET 4 KiB", &report.memcached_get_4k);
    lat("hoard Client::stat", &report.hoard_stat);
    lat("hoard wire read 4 KiB (no stat)", &report.hoard_wire_read_4k);
    let seq = |name: &str, s: &throughput::ThroughputSummary| {
        let passes: Vec<String> = s.pass_seconds.iter().map(|p| format!("{p:.3}")).collect();
        println!(
            "{name:<34} best {:.2} GiB/s ({:.1} Gbit/s)  median {:.2} GiB/s ({:.1} Gbit/s)  passes [s]: {}",
            s.best_gib_s, s.best_gbit_s, s.median_gib_s, s.median_gbit_s, passes.join(" ")
        );
    };
    seq("hoard sequential (checksums on)", &report.hoard_sequential);
    seq("hoard sequential (checksums off)", &report.hoard_sequential_no_verify);
    println!(
        "iperf3 loopback: {:.1} Gbit/s one stream, {:.1} Gbit/s two streams; preload {:.2} s",
        report.iperf3_one_stream_gbit_s, report.iperf3_two_streams_gbit_s, report.preload_seconds
    );
}
