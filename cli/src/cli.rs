//! Command-line definitions (clap derive). Flags with `env` can come from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// hoard: a distributed cache on top of S3 or a local directory.
#[derive(Debug, Parser)]
#[command(name = "hoard", version, about, long_about = None)]
pub struct Args {
    /// Cluster config file (default: the one `hoard up` wrote, ~/.hoard/cluster.toml).
    #[arg(long, global = true, env = "HOARD_CLUSTER")]
    pub cluster: Option<PathBuf>,
    /// Log filter, as in RUST_LOG (default: `info` for servers, `warn` for other commands).
    #[arg(long, global = true, env = "HOARD_LOG")]
    pub log: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// hoard's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Quickstart: a single-node cluster over a local directory, in the foreground.
    Up {
        /// Directory whose files hoard serves as mount `data` (default: ~/.hoard/data).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// RPC address of the worker.
        #[arg(long, default_value = "127.0.0.1:7301")]
        listen: SocketAddr,
        /// Prometheus metrics address.
        #[arg(long, default_value = "127.0.0.1:7401")]
        metrics: SocketAddr,
        /// Address of the S3-compatible endpoint (bucket `data`).
        #[arg(long, default_value = "127.0.0.1:7480")]
        s3: SocketAddr,
        /// Memory for cached pages.
        #[arg(long, default_value = "1GiB")]
        memory: bytesize::ByteSize,
    },
    /// Run one worker of a cluster config.
    Worker {
        /// The cluster config (overrides --cluster).
        #[arg(long, env = "HOARD_WORKER_CONFIG")]
        config: Option<PathBuf>,
        /// This worker's id in the config.
        #[arg(long, env = "HOARD_WORKER_ID")]
        id: String,
    },
    /// Serve the S3-compatible endpoint (every mount is a bucket) until SIGINT/SIGTERM.
    Gateway {
        /// Address to serve S3 on.
        #[arg(long, default_value = "127.0.0.1:7480", env = "HOARD_GATEWAY_LISTEN")]
        listen: SocketAddr,
        /// Prometheus metrics address (none by default).
        #[arg(long)]
        metrics: Option<SocketAddr>,
    },
    /// List a directory: `hoard ls /MOUNT/dir`; `hoard ls /` lists the mounts.
    Ls {
        /// Path.
        #[arg(default_value = "/")]
        path: String,
        /// List every key under the path, not just one level.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Size, version and modification time of a file.
    Stat {
        /// Path (`/MOUNT/key`).
        path: String,
    },
    /// Write a file (or a byte range of it) to standard output.
    Cat {
        /// Path (`/MOUNT/key`).
        path: String,
        /// First byte.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Number of bytes (default: to the end).
        #[arg(long)]
        length: Option<u64>,
    },
    /// Preload a file or every file under a directory into the cache.
    Load {
        /// Path (`/MOUNT/key` or `/MOUNT/dir`).
        path: String,
        /// No progress bar.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a local file (or standard input) to a hoard path, creating or replacing it.
    Put {
        /// Local file, or `-` for standard input.
        local: PathBuf,
        /// Path (`/MOUNT/key`); a path ending with `/` gets the local file's name.
        path: String,
        /// Fail if the path exists.
        #[arg(long)]
        exclusive: bool,
        /// Print what was written.
        #[arg(short, long)]
        verbose: bool,
        /// No progress bar.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Append a local file (or standard input) to a hoard file, creating it if missing.
    Append {
        /// Local file, or `-` for standard input.
        local: PathBuf,
        /// Path (`/MOUNT/key`); a path ending with `/` gets the local file's name.
        path: String,
        /// Print what was written.
        #[arg(short, long)]
        verbose: bool,
        /// No progress bar.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Rename a file, or a directory with everything under it, within one mount.
    Mv {
        /// Path to rename.
        src: String,
        /// New path; an existing file there is replaced.
        dst: String,
    },
    /// Delete a file, or with `-r` a directory and everything under it.
    Rm {
        /// Path.
        path: String,
        /// Delete a directory and everything under it.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Create a directory (and its parents).
    Mkdir {
        /// Path.
        path: String,
    },
    /// Wait until everything written under a path (`/MOUNT` for all of it) is in the under-store.
    Sync {
        /// Path: a file, a directory or a mount.
        path: String,
    },
    /// Mount the cluster's files at a directory (FUSE): every mount is a top-level directory,
    /// or one mount is the root with `--mount NAME`. Runs in the foreground until Ctrl-C,
    /// SIGTERM or `hoard umount`.
    Mount(MountArgs),
    /// Unmount a `hoard mount` (the foreground process then exits).
    Umount {
        /// The mount point.
        mountpoint: PathBuf,
        /// Detach it even while files are open (they fail once the mount process exits).
        #[arg(short, long)]
        lazy: bool,
    },
    /// Cluster commands.
    Cluster {
        /// What to do.
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

/// `hoard mount ...`.
#[derive(Debug, clap::Args)]
pub struct MountArgs {
    /// Where to mount: an existing, empty directory.
    pub mountpoint: PathBuf,
    /// Show only this mount, at the root of the mount point.
    #[arg(long = "mount", value_name = "NAME")]
    pub mount: Option<String>,
    /// Refuse every change (EROFS).
    #[arg(long)]
    pub read_only: bool,
    /// Let other users use the mount (the kernel checks the permission bits).
    #[arg(long)]
    pub allow_other: bool,
    /// Go to the background once mounted.
    #[arg(long)]
    pub daemon: bool,
    /// Log file of the background process (default: $HOARD_HOME/mount.log).
    #[arg(long, requires = "daemon")]
    pub log_file: Option<PathBuf>,
    /// How long the kernel trusts names (lookups) before asking again.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub entry_ttl: Duration,
    /// How long the kernel trusts sizes and times before asking again.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub attr_ttl: Duration,
    /// How long the kernel trusts that a name does not exist (0: ask every time). A file another
    /// client creates meanwhile shows up after this.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub negative_ttl: Duration,
    /// Bypass the kernel's page cache: every read goes to hoard (direct I/O).
    #[arg(long)]
    pub no_page_cache: bool,
    /// The kernel's read-ahead window for reads through the page cache (needs root). Larger
    /// than 1 MiB, several requests of a sequential reader are in flight at once.
    #[arg(long, default_value = "1MiB")]
    pub read_ahead: bytesize::ByteSize,
    /// FUSE session threads.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Serve the mount's metrics (Prometheus text, `GET /metrics`) on this address, e.g.
    /// `127.0.0.1:9101`: `fuse_inodes` (inodes the kernel holds) and the client's counters.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

/// `hoard cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Workers, up or down, capacity, used bytes, hit ratio, write backlog.
    Status,
}

/// Log to stderr with the filter from `--log`/`HOARD_LOG`, else a default per command.
pub fn init_logging(args: &Args) {
    let default = match args.command {
        Command::Up { .. } | Command::Worker { .. } | Command::Gateway { .. } | Command::Mount(_) => "info",
        _ => "warn",
    };
    let mut filter = args.log.clone().unwrap_or_else(|| default.to_owned());
    // s3s logs every request it refuses and every S3 error an operation answers at ERROR (a
    // plain NoSuchKey included); the gateway logs failures where it handles them, at the level
    // hoard's policy gives them (docs/error-handling.md). Name `s3s` in the filter to see its own.
    if !filter.contains("s3s") {
        filter.push_str(",s3s=off");
    }
    let (filter, bad) = match EnvFilter::try_new(&filter) {
        Ok(f) => (f, None),
        Err(e) => (
            EnvFilter::new(default),
            Some(format!("ignoring the log filter `{filter}`: {e}")),
        ),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    if let Some(warning) = bad {
        tracing::warn!("{warning}");
    }
}
