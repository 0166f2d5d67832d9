//! `hoard worker`: one worker of a cluster, with its Prometheus endpoint.

use std::path::Path;

use anyhow::Context;
use hoard_transport::cluster::ClusterConfig;
use hoard_worker::WorkerConfig;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tokio_util::sync::CancellationToken;

use crate::cluster_file;

/// Latency histogram buckets in microseconds, 10 µs to 10 s.
const LATENCY_BUCKETS_US: &[f64] = &[
    10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 1e6, 1e7,
];

/// Run worker `id` of the cluster config until SIGINT/SIGTERM (with the S3 gateway, when the
/// worker has a `gateway` address).
pub async fn run(config: Option<&Path>, id: &str) -> anyhow::Result<()> {
    let cluster = cluster_file::load(config)?;
    let worker = WorkerConfig::from_cluster(&cluster, id)?;
    serve_with_gateway(cluster, worker).await
}

/// Serve a worker, and the S3 gateway in the same process when its entry has an address for it.
pub async fn serve_with_gateway(cluster: ClusterConfig, worker: WorkerConfig) -> anyhow::Result<()> {
    let Some(addr) = cluster.worker(&worker.id).and_then(|w| w.gateway) else {
        return serve(worker).await;
    };
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        super::shutdown_signal().await;
        signal.cancel();
    });
    // Bind both before serving either, so a taken port fails the start, not half of it.
    let listener = super::gateway::bind(addr).await?;
    if let Some(metrics) = worker.metrics {
        serve_metrics(metrics)?;
    }
    let rpc = tokio::net::TcpListener::bind(worker.listen)
        .await
        .with_context(|| format!("listen on {} (is another worker running there?)", worker.listen))?;
    let name = format!("gateway-{}", worker.id);
    let worker_stop = stop.clone().cancelled_owned();
    let worker_task = tokio::spawn(hoard_worker::run(worker, rpc, worker_stop));
    let gateway = super::gateway::serve(cluster, name, listener, stop.clone().cancelled_owned()).await;
    // The gateway stopped (shutdown, or it failed): stop the worker too.
    stop.cancel();
    let worker = worker_task.await.context("the worker task")?;
    gateway.and(worker)
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
