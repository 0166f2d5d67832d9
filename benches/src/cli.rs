//! Command-line flags of `hoard-bench` (clap derive), and the plan they resolve to.
//!
//! Every run is bounded twice: by a count (operations, runs, bytes) and by a wall-clock limit per
//! timed phase, so a slow or stuck peer can never turn the harness into an unbounded load loop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand};

/// hoard's benchmark harness: hoard side by side with its peers, in one run, as ratios.
#[derive(Debug, Parser)]
#[command(name = "hoard-bench", version, about, long_about = None)]
pub struct Cli {
    /// The benchmark to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Warm reads over TCP: 4 KiB random-read latency against memcached's GET, and large
    /// sequential-read throughput against the loopback TCP ceiling (iperf3).
    Read(ReadArgs),
}

/// Flags of `hoard-bench read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The `hoard` binary that runs the worker (default: the workspace's `target/release/hoard`).
    #[arg(long, env = "HOARD_BIN")]
    pub hoard_bin: Option<PathBuf>,
    /// Size of the file read sequentially (and read at random 4 KiB offsets).
    #[arg(long)]
    pub size: Option<ByteSize>,
    /// Timed 4 KiB reads, for hoard and for memcached each.
    #[arg(long)]
    pub ops: Option<u64>,
    /// Length of each iperf3 run, in seconds.
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Timed sequential passes over the whole file.
    #[arg(long)]
    pub runs: Option<u32>,
    /// Bytes per `Client::read` call of the sequential passes.
    #[arg(long, default_value = "64MiB")]
    pub range: ByteSize,
    /// Latency is measured in this many alternating hoard/memcached rounds.
    #[arg(long)]
    pub rounds: Option<u32>,
    /// Wall-clock limit of each timed phase, in seconds; a phase that reaches it stops early and
    /// reports what it measured.
    #[arg(long, default_value_t = 120)]
    pub time_limit: u64,
    /// Small and fast (64 MiB file, 2000 operations, 1 s iperf3 runs): checks that the harness
    /// works, e.g. in CI. Explicit flags still win.
    #[arg(long)]
    pub quick: bool,
    /// Run the client on a current-thread tokio runtime instead of the multi-thread default.
    #[arg(long)]
    pub current_thread: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What a `read` run does, every default applied.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    /// The `hoard` binary.
    pub hoard_bin: PathBuf,
    /// File size in bytes.
    pub size_bytes: u64,
    /// Timed 4 KiB operations per system.
    pub ops: u64,
    /// Untimed 4 KiB operations before them, per system.
    pub warmup_ops: u64,
    /// Alternating latency rounds.
    pub rounds: u32,
    /// iperf3 run length.
    pub iperf_seconds: u64,
    /// Timed sequential passes.
    pub runs: u32,
    /// Bytes per sequential `read` call.
    pub range_bytes: u64,
    /// Limit of each timed phase.
    pub time_limit: Duration,
    /// Current-thread client runtime.
    pub current_thread: bool,
    /// Quick mode.
    pub quick: bool,
    /// JSON output file.
    pub json: Option<PathBuf>,
}

/// Size of one random read.
pub const IO_BYTES: u64 = 4096;

impl ReadArgs {
    /// The plan: quick or full defaults, overridden by explicit flags, then checked.
    ///
    /// # Errors
    /// When a value is out of range or the `hoard` binary cannot be found.
    pub fn resolve(self) -> anyhow::Result<ReadPlan> {
        let q = self.quick;
        let size_bytes = self.size.map_or(if q { 64 << 20 } else { 1 << 30 }, |s| s.as_u64());
        let ops = self.ops.unwrap_or(if q { 2000 } else { 20_000 });
        let plan = ReadPlan {
            hoard_bin: hoard_bin(self.hoard_bin)?,
            size_bytes,
            ops,
            warmup_ops: (ops / 5).clamp(100, 2000),
            rounds: self.rounds.unwrap_or(if q { 2 } else { 5 }),
            iperf_seconds: self.seconds.unwrap_or(if q { 1 } else { 5 }),
            runs: self.runs.unwrap_or(if q { 3 } else { 7 }),
            range_bytes: self.range.as_u64(),
            time_limit: Duration::from_secs(self.time_limit),
            current_thread: self.current_thread,
            quick: q,
            json: self.json,
        };
        if plan.size_bytes < 16 * IO_BYTES || plan.size_bytes % IO_BYTES != 0 {
            bail!("--size must be a multiple of 4 KiB and at least 64 KiB, not {}", plan.size_bytes);
        }
        if plan.ops == 0 || plan.runs == 0 || plan.rounds == 0 || plan.iperf_seconds == 0 {
            bail!("--ops, --runs, --rounds and --seconds must be at least 1");
        }
        if plan.range_bytes < IO_BYTES {
            bail!("--range must be at least 4 KiB");
        }
        Ok(plan)
    }
}

/// `--hoard-bin`/`HOARD_BIN`, else the workspace's release build.
fn hoard_bin(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match flag {
        Some(bin) => bin,
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
            target.join("release/hoard")
        }
    };
    if !bin.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --release -p hoard-cli`, or pass --hoard-bin / HOARD_BIN",
            bin.display()
        );
    }
    bin.canonicalize().with_context(|| format!("resolve {}", bin.display()))
}
