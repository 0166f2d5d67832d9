//! `hoard mount` and `hoard umount`: the FUSE file system in the foreground, or as a daemon.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hoard_fuse::FuseConfig;

use crate::cli::MountArgs;
use crate::cluster_file;

/// Set in the environment of the background process `--daemon` starts: it mounts in the
/// foreground (of its own process group) instead of starting another one.
const DAEMON_CHILD_ENV: &str = "HOARD_MOUNT_DAEMON_CHILD";

/// How long `--daemon` waits for the background process to mount.
const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(60);

/// `hoard mount MOUNTPOINT`.
pub async fn run(cluster: Option<&Path>, args: MountArgs) -> anyhow::Result<()> {
    if hoard_fuse::is_mounted(&args.mountpoint) {
        bail!(
            "{} is already a FUSE mount point (a crashed mount? `hoard umount` it first)",
            args.mountpoint.display()
        );
    }
    let child = std::env::var_os(DAEMON_CHILD_ENV).is_some();
    if args.daemon && !child {
        return daemonize(&args);
    }
    if let Some(addr) = args.metrics {
        super::worker::serve_metrics(addr)?;
    }
    let client = cluster_file::client(cluster)?;
    let config = FuseConfig {
        mount: args.mount.clone(),
        read_only: args.read_only,
        allow_other: args.allow_other,
        entry_ttl: args.entry_ttl,
        attr_ttl: args.attr_ttl,
        negative_ttl: args.negative_ttl,
        page_cache: !args.no_page_cache,
        read_ahead: args.read_ahead.as_u64(),
        threads: args.threads,
        ..FuseConfig::default()
    };
    if child {
        ignore_hangups();
    }
    hoard_fuse::run(client, config, &args.mountpoint, super::shutdown_signal())
        .await
        .with_context(|| format!("serve the mount at {}", args.mountpoint.display()))
}

/// `hoard umount MOUNTPOINT`.
pub fn umount(mountpoint: &Path, lazy: bool) -> anyhow::Result<()> {
    let result = if lazy {
        hoard_fuse::unmount_lazy(mountpoint)
    } else {
        hoard_fuse::unmount(mountpoint)
    };
    match result {
        Err(e) if e.is_busy() => Err(e).context("files are open in it; close them, or use `hoard umount --lazy`"),
        other => Ok(other?),
    }
}

/// Start this same command again as a background process, wait until it has mounted, and
/// return.
fn daemonize(args: &MountArgs) -> anyhow::Result<()> {
    let log_path = args
        .log_file
        .clone()
        .unwrap_or_else(|| cluster_file::hoard_home().join("mount.log"));
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("open the log file {}", log_path.display()))?;
    let exe = std::env::current_exe().context("find the hoard binary")?;
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(DAEMON_CHILD_ENV, "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("open the log file")?)
            .stderr(log)
            // Its own process group: Ctrl-C in this terminal does not reach it.
            .process_group(0)
            .spawn()
            .context("start the background mount process")?
    };
    let deadline = Instant::now() + DAEMON_START_TIMEOUT;
    loop {
        if hoard_fuse::is_mounted(&args.mountpoint) {
            println!(
                "mounted at {} (pid {}, log {}); unmount with `hoard umount {}`",
                args.mountpoint.display(),
                child.id(),
                log_path.display(),
                args.mountpoint.display()
            );
            return Ok(());
        }
        if let Some(status) = child.try_wait().context("watch the background mount process")? {
            bail!(
                "the background mount process exited ({status}): see {}",
                log_path.display()
            );
        }
        if Instant::now() > deadline {
            bail!("not mounted after {DAEMON_START_TIMEOUT:?}: see {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A daemon outlives the terminal that started it: SIGHUP must not end it.
fn ignore_hangups() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move { while hup.recv().await.is_some() {} });
        }
        Err(e) => tracing::warn!("cannot ignore SIGHUP ({e}); the mount ends with its terminal"),
    }
}
