//! One module per command; this one dispatches and owns the tokio runtime.

mod fs;
mod load;
mod status;
mod up;
mod worker;

use crate::cli::{Args, ClusterCommand, Command};

/// Run the parsed command to completion.
pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cluster = args.cluster.as_deref();
    runtime.block_on(async {
        match args.command {
            Command::Up {
                dir,
                listen,
                metrics,
                memory,
            } => up::run(dir, listen, metrics, memory).await,
            Command::Worker { config, id } => worker::run(config.as_deref().or(cluster), &id).await,
            Command::Ls { path, recursive } => fs::ls(cluster, &path, recursive).await,
            Command::Stat { path } => fs::stat(cluster, &path).await,
            Command::Cat { path, offset, length } => fs::cat(cluster, &path, offset, length).await,
            Command::Load { path, quiet } => load::run(cluster, &path, quiet).await,
            Command::Cluster {
                command: ClusterCommand::Status,
            } => status::run(cluster).await,
        }
    })
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM ({e}); stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

/// `1.5 GiB`-style sizes for people.
pub fn human_bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}
