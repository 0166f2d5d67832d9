//! The results: every measurement, the comparison rows (hoard vs its peer, as a ratio, against
//! the target of design.md), a printed table and a JSON file.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::latency::LatencySummary;
use crate::throughput::ThroughputSummary;

/// Everything one `hoard-bench read` run measured.
#[derive(Debug, Serialize)]
pub struct ReadReport {
    /// When and where.
    pub environment: Environment,
    /// The parameters used.
    pub params: serde_json::Value,
    /// Seconds the preload (`Client::load`) took.
    pub preload_seconds: f64,
    /// hoard: 4 KiB `OpenFile::read` at random offsets (the file opened once), over TCP.
    pub hoard_read_4k: LatencySummary,
    /// hoard: the same over shared memory.
    pub hoard_shm_read_4k: LatencySummary,
    /// Diagnostic: 4 KiB `Client::read`, which stats the file before every read.
    pub hoard_client_read_4k: LatencySummary,
    /// Diagnostic: `Client::stat` alone (every `read` starts with one).
    pub hoard_stat: LatencySummary,
    /// Diagnostic: a 4 KiB read request straight over one connection, version known.
    pub hoard_wire_read_4k: LatencySummary,
    /// memcached: 4 KiB GET of random keys.
    pub memcached_get_4k: LatencySummary,
    /// hoard: sequential passes, default client config, over TCP.
    pub hoard_sequential: ThroughputSummary,
    /// hoard: the same over shared memory.
    pub hoard_sequential_shm: ThroughputSummary,
    /// Single-threaded `memcpy` of the same amount, in the same pieces.
    pub memcpy: ThroughputSummary,
    /// Diagnostic: the same with `client.verify_checksums = false`.
    pub hoard_sequential_no_verify: ThroughputSummary,
    /// Diagnostic: calls of `client.max_request_bytes` (one request each, no reassembly).
    pub hoard_sequential_one_request_calls: ThroughputSummary,
    /// iperf3 over loopback, one stream, Gbit/s.
    pub iperf3_one_stream_gbit_s: f64,
    /// iperf3 over loopback, two streams, Gbit/s.
    pub iperf3_two_streams_gbit_s: f64,
    /// The comparison rows.
    pub rows: Vec<Row>,
}

/// Date and machine of a run.
#[derive(Debug, Serialize)]
pub struct Environment {
    /// UTC date and time, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// CPUs available to the process.
    pub cpus: usize,
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// Whether the harness itself was built with optimisations.
    pub release_build: bool,
}

impl Environment {
    /// The current environment.
    pub fn detect() -> Environment {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, m)| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        Environment {
            date: utc_now(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel,
            release_build: !cfg!(debug_assertions),
        }
    }
}

/// One comparison: hoard, its peer, the ratio, the target, and whether it is met.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What is compared, with its unit.
    pub metric: String,
    /// hoard's value.
    pub hoard: f64,
    /// The peer's name.
    pub peer_name: String,
    /// The peer's value.
    pub peer: f64,
    /// hoard / peer.
    pub ratio: f64,
    /// The target, as text (`<= 1.00`, `>= 0.80`), or `-` for information only.
    pub target: String,
    /// Whether the target is met; `None` for information only.
    pub met: Option<bool>,
}

/// What a row's ratio must be.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// hoard / peer at most this (latency).
    AtMost(f64),
    /// hoard / peer at least this (throughput).
    AtLeast(f64),
    /// No target: a diagnostic.
    None,
}

impl Row {
    /// A row comparing `hoard` with `peer`.
    pub fn new(metric: &str, hoard: f64, peer_name: &str, peer: f64, target: Target) -> Row {
        let ratio = hoard / peer;
        let (target, met) = match target {
            Target::AtMost(t) => (format!("<= {t:.2}"), Some(ratio <= t)),
            Target::AtLeast(t) => (format!(">= {t:.2}"), Some(ratio >= t)),
            Target::None => ("-".to_owned(), None),
        };
        Row {
            metric: metric.to_owned(),
            hoard,
            peer_name: peer_name.to_owned(),
            peer,
            ratio,
            target,
            met,
        }
    }
}

/// The table, as Markdown (it reads as plain text too).
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from("| metric | hoard | peer | ratio | target | met? |\n|---|---:|---:|---:|---:|:---:|\n");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        out.push_str(&format!(
            "| {} | {:.1} | {:.1} ({}) | {:.2} | {} | {met} |\n",
            r.metric, r.hoard, r.peer, r.peer_name, r.ratio, r.target
        ));
    }
    out
}

/// Write the report as pretty JSON.
///
/// # Errors
/// When the file cannot be written.
pub fn write_json(report: &ReadReport, path: &Path) -> anyhow::Result<()> {
    let mut file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    serde_json::to_writer_pretty(&mut file, report).context("serialise the report")?;
    file.write_all(b"\n")
        .with_context(|| format!("write {}", path.display()))
}

/// The current UTC time, RFC 3339 to the second.
fn utc_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_ratios() {
        assert!(utc_now().ends_with('Z'));
        let row = Row::new("p50", 50.0, "memcached", 100.0, Target::AtMost(1.0));
        assert_eq!((row.ratio, row.met), (0.5, Some(true)));
        let row = Row::new("gbit", 10.0, "iperf3", 20.0, Target::AtLeast(0.8));
        assert_eq!(row.met, Some(false));
        assert!(table(&[row]).contains("| NO |"));
    }
}
