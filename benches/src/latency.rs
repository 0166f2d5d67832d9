//! Closed-loop latency measurement: one operation outstanding at a time, each one timed.
//!
//! The same loop drives hoard and memcached, so both pay the same timer and histogram costs.
//! Latencies are recorded in nanoseconds in an HdrHistogram (3 significant digits) and reported
//! in microseconds.

use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::procs::ProcStats;

/// How long past its deadline a timed round may run before it counts as stuck.
const STUCK_GRACE: Duration = Duration::from_secs(15);

/// Something whose operations are timed one at a time. (A trait rather than an async closure:
/// the futures of async closures cannot be proven `Send`, and the benchmark runs in a spawned
/// task.)
pub trait Subject {
    /// Operation number `i`.
    fn op(&mut self, i: u64) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Percentiles of one system's latencies.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencySummary {
    /// Operations timed.
    pub ops: u64,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Slowest, µs.
    pub max_us: f64,
    /// CPU time of the measuring process (all threads) per operation, µs.
    pub client_cpu_us_per_op: f64,
    /// CPU time of the server process (all threads) per operation, µs.
    pub server_cpu_us_per_op: f64,
    /// Context switches of the measuring process per operation.
    pub client_switches_per_op: f64,
    /// Context switches of the server process per operation.
    pub server_switches_per_op: f64,
}

/// Latencies of one system, filled over one or more rounds.
#[derive(Debug)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
    /// Rounds that stopped at the time limit before their operation count.
    pub truncated_rounds: u32,
    /// The measuring process during the timed operations.
    client: ProcStats,
    /// The server process during the timed operations.
    server: ProcStats,
}

impl LatencyRecorder {
    /// An empty recorder (1 ns to 60 s, 3 significant digits).
    pub fn new() -> LatencyRecorder {
        let histogram = Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("the bounds are valid constants");
        LatencyRecorder {
            histogram,
            truncated_rounds: 0,
            client: ProcStats::default(),
            server: ProcStats::default(),
        }
    }

    /// Count what the client and the server processes did during timed operations.
    pub fn add_proc_stats(&mut self, client: ProcStats, server: ProcStats) {
        self.client.cpu_ns += client.cpu_ns;
        self.client.switches += client.switches;
        self.server.cpu_ns += server.cpu_ns;
        self.server.switches += server.switches;
    }

    /// Time `ops` operations of `subject` one after the other (numbered from `first`), stopping
    /// early once `deadline` passes.
    ///
    /// # Errors
    /// The first error of an operation, or one stuck well past the deadline.
    pub async fn run(
        &mut self,
        subject: &mut impl Subject,
        first: u64,
        ops: u64,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let timed = async {
            for i in first..first + ops {
                let started = Instant::now();
                subject.op(i).await?;
                let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
                self.histogram.saturating_record(ns);
                if Instant::now() > deadline {
                    self.truncated_rounds += 1;
                    break;
                }
            }
            anyhow::Ok(())
        };
        // A stuck operation cannot outlive the deadline by more than the grace period.
        let hard_stop = tokio::time::Instant::from_std(deadline + STUCK_GRACE);
        tokio::time::timeout_at(hard_stop, timed)
            .await
            .context("finish a timed round (an operation is stuck)")?
    }

    /// The percentiles so far.
    ///
    /// # Errors
    /// When nothing was recorded.
    pub fn summary(&self) -> anyhow::Result<LatencySummary> {
        let h = &self.histogram;
        anyhow::ensure!(!h.is_empty(), "no latency was recorded");
        let us = |ns: u64| ns as f64 / 1e3;
        Ok(LatencySummary {
            ops: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            mean_us: h.mean() / 1e3,
            max_us: us(h.max()),
            client_cpu_us_per_op: self.client.cpu_ns as f64 / 1e3 / h.len() as f64,
            server_cpu_us_per_op: self.server.cpu_ns as f64 / 1e3 / h.len() as f64,
            client_switches_per_op: self.client.switches as f64 / h.len() as f64,
            server_switches_per_op: self.server.switches as f64 / h.len() as f64,
        })
    }
}

/// Run operations `0..ops` of `subject` untimed (a warm-up), within `limit`.
///
/// # Errors
/// The first error of an operation, or the limit passing.
pub async fn warm_up(subject: &mut impl Subject, ops: u64, limit: Duration) -> anyhow::Result<()> {
    let run = async {
        for i in 0..ops {
            subject.op(i).await?;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(limit, run)
        .await
        .context("finish the warm-up within the time limit")?
}
