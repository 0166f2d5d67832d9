//! The hoard cache worker.
//!
//! A worker keeps pages of under-store files in its page store and serves them to clients over
//! the transports of `hoard-transport`. It answers what it is asked: placement (which worker owns
//! which chunk) is the client's business. A miss is filled from the under-store with ranged reads,
//! one request per run of missing pages however many clients wait for them; a sequential reader
//! gets read-ahead; stat results and listings are cached for a TTL.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use hoard_transport::cluster::ClusterConfig;
//! use hoard_worker::{WorkerConfig, run};
//! let cluster = ClusterConfig::load("cluster-configs/single-node.toml")?;
//! let config = WorkerConfig::from_cluster(&cluster, "w1")?;
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! run(config, listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! # Feature flags
//! None yet.
#![deny(clippy::undocumented_unsafe_blocks)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
pub mod eviction;
pub mod metadata;
pub mod metrics;
pub mod page_store;
pub mod read_path;
mod service;
mod ufs_meter;
pub mod write;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hoard_transport::tcp::{ServerConfig, serve};
use hoard_transport::wire::FrameLimits;
use tokio::net::TcpListener;

pub use config::WorkerConfig;
pub use service::WorkerService;
pub use ufs_meter::UfsMeter;

use crate::metadata::MetadataCache;
use crate::page_store::MemoryPageStore;
use crate::read_path::{ReadPath, ReadPathConfig};
use crate::write::{WriteConfig, WritePath};

/// Build the worker's service: open every mount's under-store, size the page store.
///
/// # Errors
/// When a mount's URI cannot be opened.
pub async fn build_service(config: &WorkerConfig) -> anyhow::Result<Arc<WorkerService>> {
    let mut mounts = HashMap::new();
    for m in &config.mounts {
        let ufs = hoard_ufs::open_uri(&m.ufs, &config.s3)
            .await
            .with_context(|| format!("open mount `{}`", m.name))?;
        mounts.insert(m.name.clone(), ufs);
    }
    let store = MemoryPageStore::new(
        config.memory_capacity_bytes,
        config.page_size,
        config.memory_huge_pages,
        eviction::from_kind(config.eviction),
    )
    .with_context(|| format!("map the memory tier ({} bytes)", config.memory_capacity_bytes))?;
    let arena = store.arena();
    tracing::info!(
        bytes = arena.capacity_bytes(),
        backing = ?arena.backing(),
        locked = arena.locked(),
        "memory tier mapped"
    );
    ::metrics::gauge!(metrics::CAPACITY_BYTES).set(arena.capacity_bytes() as f64);
    let store = Arc::new(store);
    let meter = Arc::new(UfsMeter::default());
    let read_path = Arc::new(ReadPath::new(
        store,
        ReadPathConfig {
            page_size: config.page_size,
            chunk_size: config.chunk_size,
            fill_request_max_bytes: config.fill_request_max_bytes,
            readahead_bytes: config.readahead_bytes,
            ufs_concurrency: config.ufs_concurrency,
        },
        meter.clone(),
    ));
    let metadata = Arc::new(MetadataCache::new(config.metadata_ttl, config.metadata_entries));
    let write_mounts: Vec<_> = config
        .mounts
        .iter()
        .map(|m| (m.clone(), mounts[&m.name].clone(), config.coordinates.contains(&m.name)))
        .collect();
    let write = WritePath::open(
        &config.journal_dir,
        &write_mounts,
        metadata.clone(),
        WriteConfig {
            part_size: config.part_size,
            upload_concurrency: config.upload_concurrency,
            upload_retry_max: config.upload_retry_max,
            written_entries: config.written_entries,
            session_idle_timeout: config.session_idle_timeout,
        },
    )
    .with_context(|| format!("open the write journal in {}", config.journal_dir.display()))?
    .cache_pages_in(read_path.store_arc(), config.page_size);
    Ok(Arc::new(WorkerService::new(
        config.id.clone(),
        mounts,
        metadata,
        read_path,
        write,
        meter,
        config.verify_on_read,
    )))
}

/// Run a worker on `listener` until `shutdown` completes.
///
/// # Errors
/// When the service cannot be built (see [`build_service`]).
pub async fn run(
    config: WorkerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let service = build_service(&config).await?;
    let background = tokio_util::sync::CancellationToken::new();
    service.start(background.clone());
    let _stop_background = background.drop_guard();
    let server = ServerConfig {
        token: config.token.clone(),
        worker_id: config.id.clone(),
        page_size: config.page_size,
        limits: FrameLimits::default(),
        max_inflight_per_connection: config.max_inflight_per_connection,
        handshake_timeout: Duration::from_secs(10),
    };
    tracing::info!(id = %config.id, addr = %listener.local_addr()?, mounts = config.mounts.len(), "worker serving");
    serve(listener, service, server, shutdown).await;
    tracing::info!(id = %config.id, "worker stopped");
    Ok(())
}
