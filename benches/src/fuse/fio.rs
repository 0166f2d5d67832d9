//! fio as the load generator: one job per file (each job reads its own file), `psync`, queue
//! depth 1, the jobs' results added up (`group_reporting`), read back from fio's JSON output.
//!
//! The harness manages the caches itself (`invalidate=0`): fio never drops a file's pages on its
//! own, so a warm run is warm and a cold run is cold because of what the harness did before it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde::Serialize;

use super::cpu::CpuUse;

/// What one fio run read.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FioResult {
    /// Bytes read.
    pub io_bytes: u64,
    /// Read throughput, bytes per second.
    pub bytes_per_s: f64,
    /// Read operations per second.
    pub iops: f64,
    /// How long the jobs ran, seconds.
    pub seconds: f64,
    /// CPU used meanwhile (filled in by the caller, which knows the processes).
    pub cpu: CpuUse,
}

impl FioResult {
    /// Throughput in MiB/s.
    pub fn mib_s(&self) -> f64 {
        self.bytes_per_s / f64::from(1u32 << 20)
    }
}

/// The access pattern of a run.
#[derive(Debug, Clone, Copy)]
pub enum Pattern {
    /// Every file once, in order, 1 MiB per read.
    Sequential,
    /// 4 KiB reads at random offsets for this long.
    Random(Duration),
}

/// Run fio over `files` (each `file_bytes` long) and return what it measured.
///
/// # Errors
/// When fio fails, reports a job error, reads nothing, or prints no JSON.
pub async fn run(files: &[PathBuf], file_bytes: u64, pattern: Pattern) -> anyhow::Result<FioResult> {
    let mut command = tokio::process::Command::new("fio");
    command.args([
        "--output-format=json",
        "--group_reporting",
        "--ioengine=psync",
        "--iodepth=1",
        "--invalidate=0",
        &format!("--size={file_bytes}"),
    ]);
    match pattern {
        Pattern::Sequential => command.args(["--rw=read", "--bs=1M"]),
        Pattern::Random(length) => command.args([
            "--rw=randread".to_owned(),
            "--bs=4k".to_owned(),
            "--norandommap".to_owned(),
            "--time_based".to_owned(),
            format!("--runtime={}s", length.as_secs().max(1)),
        ]),
    };
    for (i, file) in files.iter().enumerate() {
        command.arg(format!("--name=j{i}")).arg(filename_arg(file)?);
    }
    let out = command
        .kill_on_drop(true)
        .output()
        .await
        .context("run fio (Debian package `fio`)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "fio failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&stdout)
}

/// `--filename=PATH`; fio reads `:` as a list of files, so a path with one is refused.
fn filename_arg(path: &Path) -> anyhow::Result<String> {
    let path = path.to_str().context("a non-UTF-8 path for fio")?;
    ensure!(!path.contains(':'), "fio cannot take a path with `:`: {path}");
    Ok(format!("--filename={path}"))
}

/// The read results of fio's JSON output (`group_reporting`: one job entry).
fn parse(stdout: &str) -> anyhow::Result<FioResult> {
    let json = stdout
        .find('{')
        .map(|at| &stdout[at..])
        .context("fio printed no JSON")?;
    let value: serde_json::Value = serde_json::from_str(json).context("parse fio's JSON")?;
    let job = value
        .get("jobs")
        .and_then(|jobs| jobs.get(0))
        .context("fio's JSON has no job")?;
    let error = job.get("error").and_then(serde_json::Value::as_u64).unwrap_or(0);
    ensure!(error == 0, "a fio job failed with error {error}");
    let read = job.get("read").context("fio's JSON has no read results")?;
    let number = |key: &str| {
        read.get(key)
            .and_then(serde_json::Value::as_f64)
            .with_context(|| format!("fio's JSON has no read.{key}"))
    };
    let result = FioResult {
        io_bytes: number("io_bytes")? as u64,
        bytes_per_s: number("bw_bytes")?,
        iops: number("iops")?,
        seconds: number("runtime")? / 1000.0,
        cpu: CpuUse::default(),
    };
    ensure!(result.io_bytes > 0, "fio read nothing");
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fio_json_is_read_and_job_errors_fail() {
        let out = "note: both iodepth >= 1 and synchronous I/O engine are selected\n{\"jobs\": [{\"error\": 0, \
                   \"read\": {\"io_bytes\": 1048576, \"bw_bytes\": 2097152, \"iops\": 2.0, \"runtime\": 500}}]}";
        let r = parse(out).expect("parses");
        assert_eq!((r.io_bytes, r.iops, r.seconds, r.mib_s()), (1 << 20, 2.0, 0.5, 2.0));
        let failed = "{\"jobs\": [{\"error\": 5, \"read\": {}}]}";
        assert!(parse(failed).is_err());
        assert!(parse("no json").is_err());
        assert!(filename_arg(Path::new("/a:b")).is_err());
    }
}
