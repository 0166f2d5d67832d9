//! The throughput ceiling: iperf3 over loopback, one stream (one client connection's worth) and
//! two streams.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::procs::{ChildGuard, free_addr, require_tool};

/// How often a client is retried while the one-off server is still starting.
const CONNECT_TRIES: u32 = 50;

/// Bits per second received by an iperf3 run of `seconds` with `streams` parallel streams.
///
/// # Errors
/// When iperf3 is missing, fails, or prints JSON without `end.sum_received.bits_per_second`.
pub async fn loopback_bits_per_second(dir: &Path, seconds: u64, streams: u32) -> anyhow::Result<f64> {
    let program = require_tool("iperf3", "iperf3")?;
    let addr = free_addr()?;
    let port = addr.port().to_string();
    let mut server = Command::new(&program);
    server.args(["-s", "-1", "-p", &port, "-B", "127.0.0.1"]);
    let _server = ChildGuard::spawn(
        "iperf3 server",
        server,
        &dir.join(format!("iperf3-server-{streams}.log")),
    )?;
    let limit = Duration::from_secs(seconds + 20);
    for _ in 0..CONNECT_TRIES {
        let run = tokio::process::Command::new(&program)
            .args([
                "-c",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                &seconds.to_string(),
                "-P",
                &streams.to_string(),
                "-J",
            ])
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(limit, run)
            .await
            .context("finish an iperf3 run in time")?
            .context("run iperf3")?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).context("parse iperf3's JSON")?;
        if let Some(error) = json.get("error").and_then(|e| e.as_str()) {
            if error.contains("Connection refused") {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            bail!("iperf3 failed: {error}");
        }
        return json
            .pointer("/end/sum_received/bits_per_second")
            .and_then(serde_json::Value::as_f64)
            .context("find end.sum_received.bits_per_second in iperf3's JSON");
    }
    bail!("iperf3's server did not accept a connection on {addr}")
}
