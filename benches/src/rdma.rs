//! `hoard-bench rdma`: hoard's one-sided reads against perftest on the same RDMA device, in the
//! same boot of the RDMA virtual machine (`scripts/rdma-bench.sh` runs it there).
//!
//! - Latency: hoard's warm 4 KiB read (`OpenFile::read` of a page whose location the client
//!   remembers: one chain of an RDMA READ of the bytes and one of the slot's generation word,
//!   then the checks and the copy into the caller's buffer) against `ib_read_lat -s 4096`
//!   (one READ at a time, busy-polled).
//! - Bandwidth: hoard reading the whole warm file in large ranges (pages fetched in parallel
//!   with many READs in flight) against `ib_read_bw -s 1048576`.
//!
//! Soft-RoCE under QEMU emulation is slow in absolute terms, and noisy: the two sides run in
//! alternating rounds, and the ratios are what count.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use hoard_client::{Client, TransportChoice};
use hoard_transport::cluster::ClusterConfig;
use rand::{Rng, RngCore, SeedableRng};
use serde::Serialize;

use crate::cli::RdmaPlan;
use crate::procs::{ChildGuard, free_addr, require_tool};
use crate::report::{Row, Target, table};

/// What one run measured.
#[derive(Debug, Serialize)]
struct RdmaReport {
    device: String,
    file_bytes: u64,
    ops: u64,
    hoard_4k_p50_us: f64,
    hoard_4k_p99_us: f64,
    hoard_4k_avg_us: f64,
    ib_read_lat_typical_us: f64,
    ib_read_lat_avg_us: f64,
    ib_read_lat_p99_us: f64,
    hoard_mb_s: f64,
    hoard_unchecked_mb_s: f64,
    ib_read_bw_mb_s: f64,
    latency_round_ratios: Vec<f64>,
    bandwidth_round_ratios: Vec<f64>,
    rows: Vec<Row>,
}

/// Run the benchmark as `plan` says.
///
/// # Errors
/// No RDMA device (run it in the VM), perftest missing, or a step failing.
pub fn run(plan: RdmaPlan) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(run_async(plan))
}

async fn run_async(plan: RdmaPlan) -> anyhow::Result<()> {
    require_tool("ib_read_lat", "perftest")?;
    let device = plan.device.clone();
    let dir = tempfile::tempdir().context("temporary directory")?;

    // One worker serving RDMA; two clients reading through it only, one verifying the CRC32C of
    // every whole page it reads (the default), one not.
    let data_dir = dir.path().join("ufs");
    std::fs::create_dir_all(&data_dir)?;
    let mut bytes = vec![0u8; plan.size_bytes as usize];
    rand::rngs::StdRng::seed_from_u64(3).fill_bytes(&mut bytes);
    std::fs::write(data_dir.join("data.bin"), &bytes).context("write the file")?;
    let (addr, metrics) = (free_addr()?, free_addr()?);
    let text = format!(
        "token = \"bench\"\n[worker]\nrdma = \"on\"\nreadahead = \"0B\"\n[client]\nconnect_timeout = \"60s\"\n\
         rdma_busy_poll = \"{}\"\n\
         [[workers]]\nid = \"w1\"\naddr = \"{addr}\"\nmetrics = \"{metrics}\"\nmemory_capacity = \"{}\"\n\
         journal_dir = {:?}\n[[mounts]]\nname = \"bench\"\nufs = \"file://{}\"\n",
        humantime::format_duration(plan.busy_poll),
        bytesize::ByteSize::b(plan.size_bytes * 2),
        dir.path().join("journal").display().to_string(),
        data_dir.display()
    );
    let config_path = dir.path().join("cluster.toml");
    std::fs::write(&config_path, &text)?;
    let mut command = Command::new(&plan.hoard_bin);
    command
        .args(["worker", "--id", "w1", "--cluster"])
        .arg(&config_path)
        .env("HOARD_LOG", "warn");
    let mut worker = ChildGuard::spawn("hoard worker", command, &dir.path().join("worker.log"))?;
    worker.wait_listening(addr, Duration::from_secs(120)).await?;
    let config = ClusterConfig::parse(&text)?;
    let client = |verify: bool, fence: bool| {
        let mut config = config.clone();
        config.client.verify_checksums = verify;
        config.client.rdma_fence = fence;
        Client::builder()
            .cluster(config)
            .transport(TransportChoice::Rdma)
            .client_name("hoard-bench-rdma")
            .build()
    };
    let (client, unverified, unfenced) = (client(true, true)?, client(false, true)?, client(true, false)?);
    let path = "/bench/data.bin";
    client.load(path, &|_| {}).await.context("preload")?;
    let file = client.open(path).await.context("open")?;
    let unverified_file = unverified.open(path).await.context("open")?;
    let unfenced_file = unfenced.open(path).await.context("open")?;
    // Every page once, so the clients know where each one is, and checked.
    for f in [&file, &unverified_file, &unfenced_file] {
        let whole = f.read(0, plan.size_bytes).await.context("read the whole file")?;
        ensure!(whole[..] == bytes[..], "hoard returned other bytes than the file's");
    }

    // Alternating rounds, so that drift of this emulated machine hits both sides alike.
    let per_round = (plan.ops / u64::from(plan.rounds)).max(10);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let (mut lat_ratios, mut bw_ratios, mut bw_unverified_ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut all_micros, mut perf_typical, mut perf_avg, mut perf_p99) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut hoard_bw, mut hoard_bw_unverified, mut perf_bw) = (Vec::new(), Vec::new(), Vec::new());
    let mut unfenced_p50 = Vec::new();
    for round in 0..plan.rounds {
        let out = perftest("ib_read_lat", &device, &["-s", "4096", "-n", &per_round.to_string()]).await?;
        let (typical, avg, p99) = parse_lat(&out).with_context(|| format!("parse ib_read_lat's output:\n{out}"))?;
        let mut micros = latency_round(&file, &bytes, &mut rng, per_round).await?;
        let mut unfenced = latency_round(&unfenced_file, &bytes, &mut rng, per_round).await?;
        unfenced_p50.push(percentile(&mut unfenced, 0.5));
        let p50 = percentile(&mut micros, 0.5);
        lat_ratios.push(p50 / typical);
        all_micros.extend(micros);
        perf_typical.push(typical);
        perf_avg.push(avg);
        perf_p99.push(p99);

        let out = perftest("ib_read_bw", &device, &["-s", "1048576", "-n", "100"]).await?;
        let bw = parse_bw(&out).with_context(|| format!("parse ib_read_bw's output:\n{out}"))?;
        let verified = pass(&file, plan.size_bytes, plan.range_bytes).await?;
        let raw = pass(&unverified_file, plan.size_bytes, plan.range_bytes).await?;
        bw_ratios.push(verified / bw);
        bw_unverified_ratios.push(raw / bw);
        perf_bw.push(bw);
        hoard_bw.push(verified);
        hoard_bw_unverified.push(raw);
        eprintln!(
            "round {round}: 4 KiB p50 {p50:.1} us vs ib_read_lat typical {typical:.1} us; \
             {verified:.1} MB/s ({raw:.1} unverified) vs ib_read_bw {bw:.1} MB/s"
        );
    }
    for c in [&client, &unverified, &unfenced] {
        let counts = c.transport_counts();
        ensure!(
            counts.tcp_bytes == 0 && counts.rdma_bytes > 0,
            "the reads did not all go over RDMA: {counts:?}"
        );
    }
    drop(worker);

    let median = |v: &mut Vec<f64>| percentile(v, 0.5);
    let (p50, p99) = (percentile(&mut all_micros, 0.5), percentile(&mut all_micros, 0.99));
    let avg = all_micros.iter().sum::<f64>() / all_micros.len() as f64;
    let (typical, perf_avg, perf_p99) = (median(&mut perf_typical), median(&mut perf_avg), median(&mut perf_p99));
    let (hoard_mb_s, raw_mb_s, bw_mb_s) = (
        median(&mut hoard_bw),
        median(&mut hoard_bw_unverified),
        median(&mut perf_bw),
    );
    let rows = vec![
        Row::new(
            "4 KiB read p50, fenced (default) (us)",
            p50,
            "ib_read_lat typical",
            typical,
            Target::AtMost(1.2),
        ),
        Row::new(
            "4 KiB read p50, unfenced (us)",
            median(&mut unfenced_p50),
            "ib_read_lat typical",
            typical,
            Target::AtMost(1.2),
        ),
        Row::new("4 KiB read avg (us)", avg, "ib_read_lat avg", perf_avg, Target::None),
        Row::new("4 KiB read p99 (us)", p99, "ib_read_lat 99%", perf_p99, Target::None),
        Row::new(
            "sequential read, CRC32C checked (MB/s)",
            hoard_mb_s,
            "ib_read_bw 1 MiB",
            bw_mb_s,
            Target::AtLeast(0.9),
        ),
        Row::new(
            "sequential read, unchecked (MB/s)",
            raw_mb_s,
            "ib_read_bw 1 MiB",
            bw_mb_s,
            Target::AtLeast(0.9),
        ),
    ];
    println!("{}", table(&rows));
    println!(
        "median of per-round ratios: latency {:.2}, bandwidth {:.2} (checked), {:.2} (unchecked)",
        median(&mut lat_ratios),
        median(&mut bw_ratios),
        median(&mut bw_unverified_ratios)
    );
    let report = RdmaReport {
        device,
        file_bytes: plan.size_bytes,
        ops: per_round * u64::from(plan.rounds),
        hoard_4k_p50_us: p50,
        hoard_4k_p99_us: p99,
        hoard_4k_avg_us: avg,
        ib_read_lat_typical_us: typical,
        ib_read_lat_avg_us: perf_avg,
        ib_read_lat_p99_us: perf_p99,
        hoard_mb_s,
        hoard_unchecked_mb_s: raw_mb_s,
        ib_read_bw_mb_s: bw_mb_s,
        latency_round_ratios: lat_ratios,
        bandwidth_round_ratios: bw_ratios,
        rows,
    };
    if let Some(json) = &plan.json {
        write_json(&report, json)?;
    }
    Ok(())
}

/// `n` timed 4 KiB reads at random offsets (after `n / 10` untimed), each checked; microseconds.
async fn latency_round(
    file: &hoard_client::OpenFile,
    bytes: &[u8],
    rng: &mut rand::rngs::StdRng,
    n: u64,
) -> anyhow::Result<Vec<f64>> {
    let pages = bytes.len() as u64 / 4096;
    let mut micros = Vec::with_capacity(n as usize);
    for i in 0..n + n / 10 {
        let offset = rng.random_range(0..pages) * 4096;
        let started = Instant::now();
        let got = file.read(offset, 4096).await?;
        let took = started.elapsed();
        ensure!(
            got[..] == bytes[offset as usize..offset as usize + 4096],
            "bytes differ at {offset}"
        );
        if i >= n / 10 {
            micros.push(took.as_secs_f64() * 1e6);
        }
    }
    Ok(micros)
}

/// One pass over the file in `range`-byte reads; MB/s.
async fn pass(file: &hoard_client::OpenFile, size: u64, range: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut offset = 0;
    while offset < size {
        let n = range.min(size - offset);
        let got = file.read(offset, n).await?;
        ensure!(got.len() as u64 == n, "short read");
        offset += n;
    }
    Ok(size as f64 / started.elapsed().as_secs_f64() / 1e6)
}

/// The `q` quantile of `v` (sorted in place).
fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

fn write_json(report: &RdmaReport, path: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

/// Run a perftest tool as server and client on `device` (GID index 1: RoCE v2 over IPv4), and
/// return the client's output.
async fn perftest(tool: &str, device: &str, args: &[&str]) -> anyhow::Result<String> {
    let port = free_addr()?.port().to_string();
    let common = ["-d", device, "-x", "1", "-p", port.as_str()];
    let mut server = Command::new(tool)
        .args(common)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start the {tool} server"))?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut client = Command::new(tool)
        .args(common)
        .args(args)
        .arg("127.0.0.1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start the {tool} client"))?;
    let mut out = String::new();
    client.stdout.take().context("stdout")?.read_to_string(&mut out)?;
    let status = client.wait()?;
    let _ = server.kill();
    let _ = server.wait();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = client.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        bail!("{tool} failed ({status}):\n{out}\n{err}");
    }
    Ok(out)
}

/// The numbers of perftest's result line (the one that starts with the message size).
fn result_line(out: &str, size: &str) -> Option<Vec<f64>> {
    out.lines()
        .map(str::split_whitespace)
        .map(|mut f| (f.next(), f))
        .find(|(first, _)| *first == Some(size))
        .map(|(_, rest)| rest.filter_map(|v| v.parse().ok()).collect())
}

/// `ib_read_lat`: (typical, average, 99th percentile) in microseconds.
fn parse_lat(out: &str) -> Option<(f64, f64, f64)> {
    // #bytes #iterations t_min t_max t_typical t_avg t_stdev 99% 99.9%
    let v = result_line(out, "4096")?;
    Some((*v.get(3)?, *v.get(4)?, *v.get(6)?))
}

/// `ib_read_bw`: average bandwidth in MB/s.
fn parse_bw(out: &str) -> Option<f64> {
    // #bytes #iterations BW_peak BW_average MsgRate
    let v = result_line(out, "1048576")?;
    v.get(2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perftest_result_lines_are_parsed() {
        let lat = " #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    t_stdev[usec]   99% percentile[usec]   99.9% percentile[usec] \n 4096       1000          88.10          612.33       107.45             115.20        30.11           246.00              400.00\n";
        assert_eq!(parse_lat(lat), Some((107.45, 115.2, 246.0)));
        let bw = " #bytes     #iterations    BW peak[MB/sec]    BW average[MB/sec]   MsgRate[Mpps]\n 1048576    200              50.12              41.20                0.000039\n";
        assert_eq!(parse_bw(bw), Some(41.2));
        assert_eq!(parse_bw("nothing"), None);
    }
}
