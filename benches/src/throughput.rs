//! Sequential-read throughput: whole passes over the warm file in large ranges, in order, one
//! `OpenFile::read_into` call at a time into one reused buffer (the client fans each call out
//! over its connections and reads the replies straight into the buffer).

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use hoard_client::OpenFile;
use serde::Serialize;

use crate::hoard_side::HoardFixture;

/// Timed passes over the file.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputSummary {
    /// Bytes read per pass.
    pub bytes_per_pass: u64,
    /// Bytes per `read` call.
    pub range_bytes: u64,
    /// Each timed pass, seconds.
    pub pass_seconds: Vec<f64>,
    /// Fastest pass, Gbit/s.
    pub best_gbit_s: f64,
    /// Median pass, Gbit/s.
    pub median_gbit_s: f64,
    /// Fastest pass, GiB/s.
    pub best_gib_s: f64,
    /// Median pass, GiB/s.
    pub median_gib_s: f64,
    /// Whether the time limit cut the passes short.
    pub truncated: bool,
}

/// One untimed pass that checks every byte against the file, then up to `runs` timed passes
/// until `limit` has passed.
///
/// # Errors
/// When a read fails or returns the wrong bytes.
pub async fn measure(
    file: &OpenFile,
    fixture: &HoardFixture,
    range_bytes: u64,
    runs: u32,
    limit: Duration,
) -> anyhow::Result<ThroughputSummary> {
    let size = fixture.meta.size;
    pass(file, fixture, range_bytes, true)
        .await
        .context("make the checked warm-up pass")?;
    let deadline = Instant::now() + limit;
    let mut pass_seconds = Vec::with_capacity(runs as usize);
    let mut truncated = false;
    for _ in 0..runs {
        pass_seconds.push(pass(file, fixture, range_bytes, false).await?.as_secs_f64());
        if Instant::now() > deadline {
            truncated = pass_seconds.len() < runs as usize;
            break;
        }
    }
    let mut sorted = pass_seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let (best, median) = (sorted[0], sorted[sorted.len() / 2]);
    let gbit = |s: f64| size as f64 * 8.0 / s / 1e9;
    let gib = |s: f64| size as f64 / s / f64::from(1u32 << 30);
    Ok(ThroughputSummary {
        bytes_per_pass: size,
        range_bytes,
        best_gbit_s: gbit(best),
        median_gbit_s: gbit(median),
        best_gib_s: gib(best),
        median_gib_s: gib(median),
        pass_seconds,
        truncated,
    })
}

/// Read the whole file in order, `range_bytes` per call; with `check`, compare every byte.
async fn pass(file: &OpenFile, fixture: &HoardFixture, range_bytes: u64, check: bool) -> anyhow::Result<Duration> {
    let size = fixture.meta.size;
    let started = Instant::now();
    let mut offset = 0;
    // One buffer for the whole pass, as a loader reusing its batch buffer would: the client reads
    // each reply straight into it, so nothing is allocated or faulted in after the first call.
    let mut buf = bytes::BytesMut::with_capacity(range_bytes as usize);
    while offset < size {
        let want = range_bytes.min(size - offset);
        buf.clear();
        buf = file
            .read_into(offset, want, buf)
            .await
            .context("read a range through hoard")?;
        let bytes = &buf;
        ensure!(
            bytes.len() as u64 == want,
            "hoard returned {} bytes at {offset}, not {want}",
            bytes.len()
        );
        if check {
            fixture.check(offset, bytes)?;
        }
        offset += want;
    }
    Ok(started.elapsed())
}
