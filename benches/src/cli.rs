//! Command-line flags of `hoard-bench` (clap derive), and the plan they resolve to.
//!
//! Every run is bounded twice: by a count (operations, runs, bytes) and by a wall-clock limit per
//! timed phase, so a slow or stuck peer can never turn the harness into an unbounded load loop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

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
    /// Checkpoint save throughput: N writers streaming shards through hoard (`back` and
    /// `through` mode, on Garage), against local disk with fsync and straight S3 uploads.
    Checkpoint(CheckpointArgs),
    /// The FUSE mount under fio: sequential 1 MiB and random 4 KiB reads, cold and warm, side by
    /// side with the same files on local disk and the native client; and a listing of a large
    /// directory through the mount, the CLI and local disk.
    Fuse(FuseArgs),
    /// One-sided RDMA reads against perftest on the same device (`ib_read_lat`, `ib_read_bw`):
    /// run inside the RDMA virtual machine (`scripts/rdma-bench.sh`).
    Rdma(RdmaArgs),
    /// The S3 gateway against the S3 server it caches, with the same S3 client (the AWS Rust
    /// SDK): small-object GET latency and large-object GET throughput, cold and warm, with no
    /// delay and with a delay proxy in front of the S3 server (so it answers as late as S3 does).
    Gateway(GatewayArgs),
}

/// Flags of `hoard-bench gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// The `hoard` binary that runs the worker and its gateway (default: the workspace's
    /// `target/release/hoard`).
    #[arg(long, env = "HOARD_BIN")]
    pub hoard_bin: Option<PathBuf>,
    /// Small objects of 4 KiB read once cold, then warm [default: 200; --quick: 40].
    #[arg(long)]
    pub small_objects: Option<u32>,
    /// Warm passes over the small objects [default: 5; --quick: 2].
    #[arg(long)]
    pub warm_passes: Option<u32>,
    /// Size of the large object [default: 256MiB; --quick: 32MiB].
    #[arg(long)]
    pub large_size: Option<ByteSize>,
    /// Delay the proxy adds to each request's round trip (half each way), as between a client
    /// and S3.
    #[arg(long, default_value = "20ms")]
    pub delay: humantime::Duration,
    /// A third scenario paces each connection to the S3 server to this bandwidth besides the
    /// delay, as S3 serves one GET (about 100 MB/s); `0` leaves it out.
    #[arg(long, default_value = "100MiB")]
    pub connection_bandwidth: ByteSize,
    /// The worker's `metadata_ttl`: how long it trusts an object's ETag before it asks the S3
    /// server again (a round trip in front of a GET of an object not read for that long). The
    /// worker's default, 5 s, is shorter than a pass over the objects.
    #[arg(long, default_value = "10m")]
    pub metadata_ttl: humantime::Duration,
    /// Directory for Garage's data and the worker's files [default: the system's temporary
    /// directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Wall-clock limit of each timed phase, in seconds.
    #[arg(long, default_value_t = 300)]
    pub time_limit: u64,
    /// Small and fast: checks that the harness works. Explicit flags still win.
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What a `gateway` run does, every default applied.
#[derive(Debug, Clone)]
pub struct GatewayPlan {
    /// The `hoard` binary.
    pub hoard_bin: PathBuf,
    /// Small objects.
    pub small_objects: u32,
    /// Warm passes over them.
    pub warm_passes: u32,
    /// Bytes of the large object.
    pub large_bytes: u64,
    /// Round-trip delay of the proxy.
    pub delay: Duration,
    /// Bytes per second of one connection in the paced scenario (`None`: no such scenario).
    pub connection_bandwidth: Option<u64>,
    /// The worker's `metadata_ttl`.
    pub metadata_ttl: Duration,
    /// Where Garage's data and the worker's files go.
    pub dir: PathBuf,
    /// Limit of each timed phase.
    pub time_limit: Duration,
    /// Quick mode.
    pub quick: bool,
    /// JSON output file.
    pub json: Option<PathBuf>,
}

impl GatewayArgs {
    /// The plan: quick or full defaults, overridden by explicit flags, then checked.
    ///
    /// # Errors
    /// When a value is out of range or the `hoard` binary cannot be found.
    pub fn resolve(self) -> anyhow::Result<GatewayPlan> {
        let q = self.quick;
        let plan = GatewayPlan {
            hoard_bin: hoard_bin(self.hoard_bin)?,
            small_objects: self.small_objects.unwrap_or(if q { 40 } else { 200 }),
            warm_passes: self.warm_passes.unwrap_or(if q { 2 } else { 5 }),
            large_bytes: self
                .large_size
                .map_or(if q { 32 << 20 } else { 256 << 20 }, |s| s.as_u64()),
            delay: self.delay.into(),
            connection_bandwidth: Some(self.connection_bandwidth.as_u64()).filter(|b| *b > 0),
            metadata_ttl: self.metadata_ttl.into(),
            dir: self.dir.unwrap_or_else(std::env::temp_dir),
            time_limit: Duration::from_secs(self.time_limit),
            quick: q,
            json: self.json,
        };
        if plan.small_objects == 0 || plan.warm_passes == 0 || plan.large_bytes < (1 << 20) {
            bail!("--small-objects and --warm-passes must be at least 1, --large-size at least 1 MiB");
        }
        Ok(plan)
    }
}

/// Flags of `hoard-bench rdma`.
#[derive(Debug, Args)]
pub struct RdmaArgs {
    /// The `hoard` binary that runs the worker, built with `--features rdma` (default: the
    /// workspace's `target/release/hoard`).
    #[arg(long, env = "HOARD_BIN")]
    pub hoard_bin: Option<PathBuf>,
    /// The RDMA device.
    #[arg(long, default_value = "rxe0")]
    pub device: String,
    /// Size of the file.
    #[arg(long, default_value = "32MiB")]
    pub size: ByteSize,
    /// Timed 4 KiB reads (and `ib_read_lat` iterations), over all rounds.
    #[arg(long, default_value_t = 2000)]
    pub ops: u64,
    /// Alternating rounds: each runs `ib_read_lat`, hoard's 4 KiB reads, `ib_read_bw` and
    /// hoard's sequential passes.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// Bytes per `OpenFile::read` call of the sequential passes.
    #[arg(long, default_value = "16MiB")]
    pub range: ByteSize,
    /// The client's `rdma_busy_poll` (how long a reader spins before it sleeps).
    #[arg(long, default_value = "1ms")]
    pub busy_poll: humantime::Duration,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What `hoard-bench rdma` runs.
#[derive(Debug)]
pub struct RdmaPlan {
    /// The `hoard` binary.
    pub hoard_bin: PathBuf,
    /// The device.
    pub device: String,
    /// File size.
    pub size_bytes: u64,
    /// Timed 4 KiB reads.
    pub ops: u64,
    /// Alternating rounds.
    pub rounds: u32,
    /// Bytes per sequential read call.
    pub range_bytes: u64,
    /// The client's busy-poll time.
    pub busy_poll: Duration,
    /// JSON output file.
    pub json: Option<PathBuf>,
}

impl RdmaArgs {
    /// The plan these flags ask for.
    ///
    /// # Errors
    /// When the `hoard` binary is not found.
    pub fn resolve(self) -> anyhow::Result<RdmaPlan> {
        if self.size.as_u64() < 1 << 20 {
            bail!("--size must be at least 1 MiB");
        }
        Ok(RdmaPlan {
            hoard_bin: hoard_bin(self.hoard_bin)?,
            device: self.device,
            size_bytes: self.size.as_u64(),
            ops: self.ops.max(10),
            rounds: self.rounds.max(1),
            range_bytes: self.range.as_u64().max(4096),
            busy_poll: self.busy_poll.into(),
            json: self.json,
        })
    }
}

/// Flags of `hoard-bench read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The `hoard` binary that runs the worker (default: the workspace's `target/release/hoard`).
    #[arg(long, env = "HOARD_BIN")]
    pub hoard_bin: Option<PathBuf>,
    /// Size of the file read sequentially and at random 4 KiB offsets [default: 1GiB; --quick: 64MiB].
    #[arg(long)]
    pub size: Option<ByteSize>,
    /// Timed 4 KiB operations of each kind (hoard, memcached, diagnostics) [default: 20000; --quick: 2000].
    #[arg(long)]
    pub ops: Option<u64>,
    /// Length of each iperf3 run, in seconds [default: 5; --quick: 1].
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Timed sequential passes over the whole file, per variant [default: 7; --quick: 3].
    #[arg(long)]
    pub runs: Option<u32>,
    /// Bytes per `OpenFile::read` call of the sequential passes.
    #[arg(long, default_value = "64MiB")]
    pub range: ByteSize,
    /// Latency is measured in this many alternating rounds (each kind of operation in turn)
    /// [default: one round per 1,000 operations]. Short rounds matter on these VMs: see
    /// docs/benchmarks.md.
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
    /// Where the measuring code (hoard's client and memcached's) runs. Both systems are always
    /// measured the same way; the ratios hold in each mode, the absolute latencies do not.
    #[arg(long, value_enum, default_value_t = RuntimeMode::Spawned)]
    pub runtime: RuntimeMode,
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
    /// Where the client code runs.
    pub runtime: RuntimeMode,
    /// Quick mode.
    pub quick: bool,
    /// JSON output file.
    pub json: Option<PathBuf>,
}

/// Where the benchmark's client code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeMode {
    /// A task spawned on a multi-thread runtime, like an application's tasks (default).
    Spawned,
    /// `block_on` of a multi-thread runtime, like `#[tokio::main]`'s main future: the main thread
    /// is woken by the runtime's threads for every reply.
    BlockOn,
    /// A current-thread runtime: the thread that waits for a reply is the one the kernel wakes.
    CurrentThread,
}

/// Operations of one kind per latency round, unless `--rounds` says otherwise.
pub const ROUND_OPS: u64 = 1000;

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
            rounds: self
                .rounds
                .unwrap_or_else(|| u32::try_from(ops.div_ceil(ROUND_OPS)).unwrap_or(u32::MAX)),
            iperf_seconds: self.seconds.unwrap_or(if q { 1 } else { 5 }),
            runs: self.runs.unwrap_or(if q { 3 } else { 7 }),
            range_bytes: self.range.as_u64(),
            time_limit: Duration::from_secs(self.time_limit),
            runtime: self.runtime,
            quick: q,
            json: self.json,
        };
        if plan.size_bytes < 16 * IO_BYTES || !plan.size_bytes.is_multiple_of(IO_BYTES) {
            bail!(
                "--size must be a multiple of 4 KiB and at least 64 KiB, not {}",
                plan.size_bytes
            );
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

/// Flags of `hoard-bench checkpoint`.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// The `hoard` binary that runs the worker (default: the workspace's `target/release/hoard`).
    #[arg(long, env = "HOARD_BIN")]
    pub hoard_bin: Option<PathBuf>,
    /// Concurrent writers, one shard each [default: 8; --quick: 4].
    #[arg(long)]
    pub writers: Option<usize>,
    /// Bytes of each shard [default: 256MiB; --quick: 32MiB].
    #[arg(long)]
    pub shard_size: Option<ByteSize>,
    /// Timed runs of every system; the median run is reported [default: 3; --quick: 1].
    #[arg(long)]
    pub runs: Option<u32>,
    /// Directory for the worker's journal, the local-disk peer's files and Garage's data: one
    /// filesystem for all, so that `back` mode and local disk write to the same disk [default:
    /// the system's temporary directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Wall-clock limit of each timed phase, in seconds.
    #[arg(long, default_value_t = 300)]
    pub time_limit: u64,
    /// Small and fast (4 writers x 32 MiB, one run): checks that the harness works. Explicit
    /// flags still win.
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What a `checkpoint` run does, every default applied.
#[derive(Debug, Clone)]
pub struct CheckpointPlan {
    /// The `hoard` binary.
    pub hoard_bin: PathBuf,
    /// Concurrent writers.
    pub writers: usize,
    /// Bytes per shard.
    pub shard_bytes: u64,
    /// Timed runs per system.
    pub runs: u32,
    /// Where the journal, the local files and Garage's data go.
    pub dir: PathBuf,
    /// Limit of each timed phase.
    pub time_limit: Duration,
    /// Quick mode.
    pub quick: bool,
    /// JSON output file.
    pub json: Option<PathBuf>,
}

impl CheckpointArgs {
    /// The plan: quick or full defaults, overridden by explicit flags, then checked.
    ///
    /// # Errors
    /// When a value is out of range or the `hoard` binary cannot be found.
    pub fn resolve(self) -> anyhow::Result<CheckpointPlan> {
        let q = self.quick;
        let plan = CheckpointPlan {
            hoard_bin: hoard_bin(self.hoard_bin)?,
            writers: self.writers.unwrap_or(if q { 4 } else { 8 }),
            shard_bytes: self
                .shard_size
                .map_or(if q { 32 << 20 } else { 256 << 20 }, |s| s.as_u64()),
            runs: self.runs.unwrap_or(if q { 1 } else { 3 }),
            dir: self.dir.unwrap_or_else(std::env::temp_dir),
            time_limit: Duration::from_secs(self.time_limit),
            quick: q,
            json: self.json,
        };
        if !(1..=256).contains(&plan.writers) || plan.runs == 0 {
            bail!("--writers must be from 1 to 256 and --runs at least 1");
        }
        if plan.shard_bytes < 1 << 20 || !plan.shard_bytes.is_multiple_of(1 << 20) {
            bail!("--shard-size must be a whole number of MiB, not {}", plan.shard_bytes);
        }
        Ok(plan)
    }
}

/// Flags of `hoard-bench fuse`.
#[derive(Debug, Args)]
pub struct FuseArgs {
    /// The `hoard` binary that runs the worker and the mount (default: the workspace's
    /// `target/release/hoard`).
    #[arg(long, env = "HOARD_BIN")]
    pub hoard_bin: Option<PathBuf>,
    /// Files read, one fio job (and one native reader) each [default: 4; --quick: 2].
    #[arg(long)]
    pub files: Option<usize>,
    /// Bytes of each file [default: 256MiB; --quick: 32MiB].
    #[arg(long)]
    pub file_size: Option<ByteSize>,
    /// Length of each random-read run, in seconds [default: 10; --quick: 2].
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Entries of the directory that is listed [default: 100000; --quick: 10000].
    #[arg(long)]
    pub entries: Option<usize>,
    /// Directory for the files and the mount point (a local disk: the local-disk peer reads the
    /// files there) [default: the system's temporary directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Small and fast (2 files of 32 MiB, 2 s random runs, 10,000 entries): checks that the
    /// harness works. Explicit flags still win.
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// An extra flag for both `hoard mount` processes (repeat for more), e.g.
    /// `--mount-arg=--read-ahead=1MiB` to compare read-ahead windows.
    #[arg(long = "mount-arg", allow_hyphen_values = true)]
    pub mount_args: Vec<String>,
}

/// What a `fuse` run does, every default applied.
#[derive(Debug, Clone)]
pub struct FusePlan {
    /// The `hoard` binary.
    pub hoard_bin: PathBuf,
    /// Files read at once.
    pub files: usize,
    /// Bytes per file.
    pub file_bytes: u64,
    /// Length of each random-read run.
    pub random_run: Duration,
    /// Entries of the listed directory.
    pub entries: usize,
    /// Where the files and the mount point go.
    pub dir: PathBuf,
    /// Quick mode.
    pub quick: bool,
    /// JSON output file.
    pub json: Option<PathBuf>,
    /// Extra flags of both mounts.
    pub mount_args: Vec<String>,
}

impl FuseArgs {
    /// The plan: quick or full defaults, overridden by explicit flags, then checked.
    ///
    /// # Errors
    /// When a value is out of range or the `hoard` binary cannot be found.
    pub fn resolve(self) -> anyhow::Result<FusePlan> {
        let q = self.quick;
        let plan = FusePlan {
            hoard_bin: hoard_bin(self.hoard_bin)?,
            files: self.files.unwrap_or(if q { 2 } else { 4 }),
            file_bytes: self
                .file_size
                .map_or(if q { 32 << 20 } else { 256 << 20 }, |s| s.as_u64()),
            random_run: Duration::from_secs(self.seconds.unwrap_or(if q { 2 } else { 10 })),
            entries: self.entries.unwrap_or(if q { 10_000 } else { 100_000 }),
            dir: self.dir.unwrap_or_else(std::env::temp_dir),
            quick: q,
            json: self.json,
            mount_args: self.mount_args,
        };
        if !(1..=64).contains(&plan.files) || plan.random_run.is_zero() {
            bail!("--files must be from 1 to 64 and --seconds at least 1");
        }
        if plan.file_bytes < 1 << 20 || !plan.file_bytes.is_multiple_of(1 << 20) {
            bail!("--file-size must be a whole number of MiB, not {}", plan.file_bytes);
        }
        Ok(plan)
    }
}

/// `--hoard-bin`/`HOARD_BIN`, else the workspace's release build.
fn hoard_bin(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match flag {
        Some(bin) => bin,
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
                PathBuf::from,
            );
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
