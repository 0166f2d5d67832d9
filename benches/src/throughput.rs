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
    // One buffer for all passes, as a loader reusing its batch buffer would (and as the memcpy
    // baseline does): the client reads each range straight into it, so nothing is allocated or
    // faulted in after the warm-up pass.
    let mut buf = bytes::BytesMut::with_capacity(range_bytes as usize);
    pass(file, fixture, range_bytes, &mut buf, true)
        .await
        .context("make the checked warm-up pass")?;
    let deadline = Instant::now() + limit;
    let mut pass_seconds = Vec::with_capacity(runs as usize);
    let mut truncated = false;
    for _ in 0..runs {
        pass_seconds.push(pass(file, fixture, range_bytes, &mut buf, false).await?.as_secs_f64());
        if Instant::now() > deadline {
            truncated = pass_seconds.len() < runs as usize;
            break;
        }
    }
    Ok(summarize(size, range_bytes, pass_seconds, truncated))
}

/// The single-threaded `memcpy` bandwidth of this machine, measured as the passes over the file
/// are made: `size` bytes of a source buffer copied in order, `range_bytes` per copy, into one
/// reused buffer (the same access pattern and buffer reuse as [`measure`]). One untimed pass
/// faults both buffers in.
pub fn memcpy(size: u64, range_bytes: u64, runs: u32, limit: Duration) -> ThroughputSummary {
    let src: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(0x9e37_79b9) >> 13) as u8).collect();
    let mut dst = vec![0u8; range_bytes as usize];
    let mut copy_pass = || {
        let started = Instant::now();
        for piece in src.chunks(range_bytes as usize) {
            dst[..piece.len()].copy_from_slice(piece);
            std::hint::black_box(&mut dst);
        }
        started.elapsed()
    };
    copy_pass();
    let deadline = Instant::now() + limit;
    let mut pass_seconds = Vec::with_capacity(runs as usize);
    let mut truncated = false;
    for _ in 0..runs {
        pass_seconds.push(copy_pass().as_secs_f64());
        if Instant::now() > deadline {
            truncated = pass_seconds.len() < runs as usize;
            break;
        }
    }
    summarize(size, range_bytes, pass_seconds, truncated)
}

fn summarize(size: u64, range_bytes: u64, pass_seconds: Vec<f64>, truncated: bool) -> ThroughputSummary {
    let mut sorted = pass_seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let (best, median) = (sorted[0], sorted[sorted.len() / 2]);
    let gbit = |s: f64| size as f64 * 8.0 / s / 1e9;
    let gib = |s: f64| size as f64 / s / f64::from(1u32 << 30);
    ThroughputSummary {
        bytes_per_pass: size,
        range_bytes,
        best_gbit_s: gbit(best),
        median_gbit_s: gbit(median),
        best_gib_s: gib(best),
        median_gib_s: gib(median),
        pass_seconds,
        truncated,
    }
}

/// Read the whole file in order, `range_bytes` per call; with `check`, compare every byte.
async fn pass(
    file: &OpenFile,
    fixture: &HoardFixture,
    range_bytes: u64,
    buf: &mut bytes::BytesMut,
    check: bool,
) -> anyhow::Result<Duration> {
    let size = fixture.meta.size;
    let started = Instant::now();
    let mut offset = 0;
    while offset < size {
        let want = range_bytes.min(size - offset);
        buf.clear();
        *buf = file
            .read_into(offset, want, std::mem::take(buf))
            .await
            .context("read a range through hoard")?;
        let bytes = &*buf;
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
