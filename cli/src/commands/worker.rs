//! `hoard worker`: one worker of a cluster, with its Prometheus endpoint.

use std::path::Path;

use anyhow::Context;
use hoard_worker::WorkerConfig;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use crate::cluster_file;

/// Latency histogram buckets in microseconds, 10 µs to 10 s.
const LATENCY_BUCKETS_US: &[f64] = &[
    10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 1e6, 1e7,
];

/// Run worker `id` of the cluster config until SIGINT/SIGTERM.
pub async fn run(config: Option<&Path>, id: &str) -> anyhow::Result<()> {
    let cluster = cluster_file::load(config)?;
    let config = WorkerConfig::from_cluster(&cluster, id)?;
    serve(config).await
}

/// Serve this process's metrics (Prometheus text) on `addr`. Call it once, from a runtime.
pub fn serve_metrics(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("latency_us".into()), LATENCY_BUCKETS_US)
        .context("configure metrics")?
        .install()
        .with_context(|| format!("serve metrics on {addr}"))
}

/// Serve a worker config until SIGINT/SIGTERM.
pub async fn serve(config: WorkerConfig) -> anyhow::Result<()> {
    if let Some(addr) = config.metrics {
        serve_metrics(addr)?;
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listen on {} (is another worker running there?)", config.listen))?;
    hoard_worker::run(config, listener, super::shutdown_signal()).await
}
