//! Where the CPU went during a run: the whole machine (`/proc/stat`), the worker and the mount
//! processes (`/proc/PID/task/*/schedstat`). On a 2-vCPU machine the mount's extra copies and
//! context switches compete with the reader and the worker for the same two CPUs, so these
//! numbers say what limits a run.

use serde::Serialize;

use crate::procs::ProcStats;

/// CPU used during one run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuUse {
    /// CPUs busy on average over the run, machine-wide (every process, the kernel included).
    pub busy_cpus: f64,
    /// CPU seconds of the worker process.
    pub worker_s: f64,
    /// CPU seconds of both `hoard mount` processes.
    pub mount_s: f64,
    /// CPU seconds of the harness itself: the native client's runs are measured in it.
    pub client_s: f64,
}

/// Counters at the start of a run.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    busy_ticks: u64,
    all_ticks: u64,
    worker: ProcStats,
    mounts: ProcStats,
    harness: ProcStats,
}

impl CpuSample {
    /// The counters now, of the machine and of these processes.
    pub fn take(worker: Option<u32>, mounts: &[Option<u32>]) -> CpuSample {
        let (busy_ticks, all_ticks) = machine_ticks();
        let mut mount_stats = ProcStats::default();
        for pid in mounts.iter().flatten() {
            let s = ProcStats::of(*pid);
            mount_stats.cpu_ns += s.cpu_ns;
            mount_stats.switches += s.switches;
        }
        CpuSample {
            busy_ticks,
            all_ticks,
            worker: worker.map(ProcStats::of).unwrap_or_default(),
            mounts: mount_stats,
            harness: ProcStats::of(std::process::id()),
        }
    }

    /// What was used from `self` to `now` (taken of the same processes).
    pub fn until(self, now: CpuSample, cpus: usize) -> CpuUse {
        let all = now.all_ticks.saturating_sub(self.all_ticks).max(1);
        let busy = now.busy_ticks.saturating_sub(self.busy_ticks);
        CpuUse {
            busy_cpus: busy as f64 / all as f64 * cpus as f64,
            worker_s: now.worker.since(self.worker).cpu_ns as f64 / 1e9,
            mount_s: now.mounts.since(self.mounts).cpu_ns as f64 / 1e9,
            client_s: now.harness.since(self.harness).cpu_ns as f64 / 1e9,
        }
    }
}

/// (busy, all) ticks of every CPU so far, from the first line of `/proc/stat`; zeros where it
/// cannot be read. Idle and I/O wait count as not busy.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    parse_cpu_line(stat.lines().next().unwrap_or_default())
}

/// `cpu  user nice system idle iowait irq softirq steal ...` → (busy, all).
fn parse_cpu_line(line: &str) -> (u64, u64) {
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|t| t.parse().ok())
        .collect();
    let all: u64 = ticks.iter().sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (all.saturating_sub(idle), all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_leave_idle_and_iowait_out() {
        assert_eq!(parse_cpu_line("cpu  10 1 5 100 4 1 2 0 0 0"), (19, 123));
        assert_eq!(parse_cpu_line(""), (0, 0));
    }
}
