//! `hoard gateway`: the S3-compatible endpoint, standalone (a worker with a `gateway` address
//! serves it in its own process: see `worker.rs`).

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use hoard_client::Client;
use hoard_gateway::Gateway;
use hoard_transport::cluster::ClusterConfig;
use tokio::net::TcpListener;

use crate::cluster_file;

/// Serve the gateway of the cluster config until SIGINT/SIGTERM.
pub async fn run(cluster: Option<&Path>, listen: SocketAddr, metrics: Option<SocketAddr>) -> anyhow::Result<()> {
    let config = cluster_file::load(cluster)?;
    let listener = bind(listen).await?;
    if let Some(addr) = metrics {
        super::worker::serve_metrics(addr)?;
    }
    let name = format!("gateway-{}", std::process::id());
    serve(config, name, listener, super::shutdown_signal()).await
}

/// Bind the gateway's address.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("listen for S3 requests on {addr} (is something else serving there?)"))
}

/// Serve the gateway on `listener` until `shutdown`.
pub async fn serve(
    config: ClusterConfig,
    name: String,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if config.gateway.keys.is_empty() && config.mounts.iter().all(|m| m.anonymous == Default::default()) {
        tracing::warn!(
            "the gateway has no [[gateway.keys]] and no mount allows anonymous access: every request will be refused"
        );
    }
    let client = Client::builder().cluster(config).client_name(name).build()?;
    hoard_gateway::serve(listener, Gateway::new(client), shutdown)
        .await
        .context("serve the S3 gateway")
}
