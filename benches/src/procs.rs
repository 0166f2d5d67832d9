//! Child processes (the hoard worker, memcached, iperf3) that die with the harness.
//!
//! Every server the harness starts is held by a [`ChildGuard`], whose `Drop` kills and reaps it:
//! an error, an early return or a panic anywhere in a benchmark leaves no process behind.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running child process, killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ChildGuard {
    /// Start `command` with stdout and stderr appended to `log`.
    ///
    /// # Errors
    /// When the log cannot be opened or the program cannot be started.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<ChildGuard> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open log {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().context("duplicate a log handle")?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("start {name} ({command:?})"))?;
        Ok(ChildGuard {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// Wait until something accepts connections on `addr`, failing early if the process exits.
    ///
    /// # Errors
    /// When the process exits first or `limit` passes; the message carries the log's tail.
    pub async fn wait_listening(&mut self, addr: SocketAddr, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Some(status) = self.child.try_wait().context("poll a child process")? {
                bail!("{} exited with {status}:\n{}", self.name, tail(&self.log));
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on {addr} within {limit:?}:\n{}",
                    self.name,
                    tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the process's log.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, then released for the child to take).
///
/// # Errors
/// When no port can be bound.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind an ephemeral loopback port")?;
    listener.local_addr().context("read the ephemeral port")
}

/// The full path of an external program, or an error that says how to install it.
///
/// # Errors
/// When `program` is on no directory of `PATH`.
pub fn require_tool(program: &str, debian_package: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .with_context(|| {
            format!("find `{program}` on PATH: install it (Debian/Ubuntu: `sudo apt-get install {debian_package}`)")
        })
}

/// CPU time and context switches of all threads of a process, so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcStats {
    /// Time on a CPU, ns (`/proc/PID/task/*/schedstat`).
    pub cpu_ns: u64,
    /// Voluntary and involuntary context switches (`/proc/PID/task/*/status`).
    pub switches: u64,
}

impl ProcStats {
    /// The counters of process `pid` now; zeros where /proc cannot be read. Threads that have
    /// exited are not counted, so take differences over spans in which the threads live on.
    pub fn of(pid: u32) -> ProcStats {
        let mut total = ProcStats::default();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return total;
        };
        for task in tasks.flatten() {
            let schedstat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total.cpu_ns += schedstat
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            for line in status.lines() {
                let count = line
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or(line.strip_prefix("nonvoluntary_ctxt_switches:"));
                total.switches += count.and_then(|n| n.trim().parse::<u64>().ok()).unwrap_or(0);
            }
        }
        total
    }

    /// What happened since `earlier`.
    pub fn since(self, earlier: ProcStats) -> ProcStats {
        ProcStats {
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
            switches: self.switches.saturating_sub(earlier.switches),
        }
    }
}

/// The last 20 lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
