//! One module per command; this one dispatches and owns the tokio runtime.

mod fs;
mod gateway;
mod load;
mod mount;
mod status;
mod up;
mod worker;
mod write;

use crate::cli::{Args, ClusterCommand, Command};

/// Run the parsed command to completion.
pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // `put -` reads standard input in a blocking thread; after Ctrl-C that read must not keep
    // the process waiting (dropping a runtime waits for its blocking threads).
    let detach = matches!(args.command, Command::Put { .. } | Command::Append { .. });
    let cluster = args.cluster.as_deref();
    let result = runtime.block_on(async {
        match args.command {
            Command::Up {
                dir,
                listen,
                metrics,
                s3,
                memory,
            } => up::run(dir, listen, metrics, s3, memory).await,
            Command::Worker { config, id } => worker::run(config.as_deref().or(cluster), &id).await,
            Command::Gateway { listen, metrics } => gateway::run(cluster, listen, metrics).await,
            Command::Ls { path, recursive } => fs::ls(cluster, &path, recursive).await,
            Command::Stat { path } => fs::stat(cluster, &path).await,
            Command::Cat { path, offset, length } => fs::cat(cluster, &path, offset, length).await,
            Command::Load { path, quiet } => load::run(cluster, &path, quiet).await,
            Command::Put {
                local,
                path,
                exclusive,
                verbose,
                quiet,
            } => {
                let out = write::Output { verbose, quiet };
                write::put(cluster, &local, &path, write::Mode::Put { exclusive }, out).await
            }
            Command::Append {
                local,
                path,
                verbose,
                quiet,
            } => {
                let out = write::Output { verbose, quiet };
                write::put(cluster, &local, &path, write::Mode::Append, out).await
            }
            Command::Mv { src, dst } => write::mv(cluster, &src, &dst).await,
            Command::Rm { path, recursive } => write::rm(cluster, &path, recursive).await,
            Command::Mkdir { path } => write::mkdir(cluster, &path).await,
            Command::Sync { path } => write::sync(cluster, &path).await,
            Command::Mount(args) => mount::run(cluster, args).await,
            Command::Umount { mountpoint, lazy } => mount::umount(&mountpoint, lazy),
            Command::Cluster {
                command: ClusterCommand::Status,
            } => status::run(cluster).await,
        }
    });
    if detach {
        runtime.shutdown_background();
    }
    result
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
