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
pub mod leases;
pub mod metadata;
pub mod metrics;
pub mod page_store;
pub mod read_path;
mod service;
mod ufs_meter;
pub mod write;

use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hoard_transport::cluster::RdmaMode;
use hoard_transport::rdma::{RdmaError, RdmaServer};
use hoard_transport::shm::{SharedRegion, serve_unix};
use hoard_transport::tcp::{ServerConfig, serve};
use hoard_transport::wire::{FrameLimits, ShmOffer};
use tokio::net::{TcpListener, UnixListener};

pub use config::WorkerConfig;
pub use service::WorkerService;
pub use ufs_meter::UfsMeter;

use crate::metadata::MetadataCache;
use crate::page_store::{MemoryPageStore, NvmeConfig, NvmeTier};
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
    ::metrics::gauge!(metrics::TIER_CAPACITY_BYTES, "tier" => "memory").set(arena.capacity_bytes() as f64);
    let store = if config.nvme_dirs.is_empty() {
        store
    } else {
        let nvme = NvmeTier::open(
            &NvmeConfig {
                dirs: config.nvme_dirs.clone(),
                capacity_bytes: config.nvme_capacity_bytes,
                page_size: config.page_size,
            },
            eviction::from_kind(config.eviction),
        )
        .with_context(|| format!("open the NVMe tier in {:?}", config.nvme_dirs))?;
        tracing::info!(bytes = nvme.capacity_bytes(), pages = nvme.len(), "NVMe tier open");
        store.with_nvme(Arc::new(nvme))
    };
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

/// Run a worker on `listener` until `shutdown` completes; with shared memory on, serve local
/// clients on its Unix socket too.
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
    let stop = background.clone();
    let _stop_background = background.drop_guard();
    let local = config.shm_socket.as_deref().and_then(|path| bind_local(path, &service));
    let server = ServerConfig {
        token: config.token.clone(),
        worker_id: config.id.clone(),
        page_size: config.page_size,
        limits: FrameLimits::default(),
        max_inflight_per_connection: config.max_inflight_per_connection,
        handshake_timeout: Duration::from_secs(10),
        instance: instance_id(),
        shm: local.as_ref().map(|l| l.offer.clone()),
        rdma: open_rdma(&config, &service)?,
    };
    tracing::info!(
        id = %config.id,
        addr = %listener.local_addr()?,
        shm = local.as_ref().map(|l| l.offer.socket.as_str()),
        rdma = server.rdma.is_some(),
        mounts = config.mounts.len(),
        "worker serving"
    );
    let local_server = local.map(|l| {
        let stopped = stop.clone();
        let task = tokio::spawn(serve_unix(
            l.listener,
            service.clone(),
            server.clone(),
            Arc::new(l.regions),
            async move { stopped.cancelled().await },
        ));
        (task, l.path)
    });
    serve(listener, service, server, shutdown).await;
    stop.cancel();
    if let Some((task, path)) = local_server {
        let _ = task.await;
        let _ = std::fs::remove_file(path);
    }
    tracing::info!(id = %config.id, "worker stopped");
    Ok(())
}

/// The shared-memory side of a worker: its socket, the regions it hands out, and its offer.
struct Local {
    listener: UnixListener,
    path: PathBuf,
    regions: Vec<SharedRegion>,
    offer: ShmOffer,
}

/// Bind the shared-memory socket at `path` (a socket left there by a worker that died is
/// replaced). `None`, with a warning saying why, when shared memory cannot be served: clients
/// then use TCP.
fn bind_local(path: &Path, service: &WorkerService) -> Option<Local> {
    let attempt = || -> anyhow::Result<Local> {
        let host = hoard_transport::shm::host_id().context("the host's boot id is unreadable")?;
        let regions = service
            .shared_regions()
            .context("share the memory tier's descriptors")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            std::fs::remove_file(path).with_context(|| format!("remove the stale socket {}", path.display()))?;
        }
        let listener = UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?;
        Ok(Local {
            listener,
            path: path.to_owned(),
            regions,
            offer: ShmOffer {
                host,
                socket: path.display().to_string(),
            },
        })
    };
    attempt()
        .inspect_err(|e| tracing::warn!("shared memory not served, local clients use TCP: {e:#}"))
        .ok()
}

/// The worker's RDMA side: its devices, with the memory tier and the NVMe tier registered.
/// `None`, with one log line saying why, when RDMA is not served (`worker.rdma = "auto"`, or
/// `"off"`).
///
/// # Errors
/// With `worker.rdma = "on"`, when RDMA cannot be served (no device, the feature not built in,
/// registration refused).
fn open_rdma(config: &WorkerConfig, service: &WorkerService) -> anyhow::Result<Option<Arc<RdmaServer>>> {
    if config.rdma == RdmaMode::Off {
        tracing::info!("RDMA not used: worker.rdma = \"off\"");
        return Ok(None);
    }
    let attempt = || -> Result<RdmaServer, RdmaError> {
        let mut server = RdmaServer::open(&config.rdma_settings)?;
        for region in service.rdma_regions(config.rdma_nvme) {
            server.register(region.id, region.data, region.generations)?;
        }
        Ok(server)
    };
    match attempt() {
        Ok(server) => {
            tracing::info!(
                devices = ?server.device_names(),
                registered_bytes = server.registered_bytes(),
                "RDMA served: the memory tier (and with worker.rdma_nvme the NVMe tier) is registered for one-sided reads"
            );
            Ok(Some(Arc::new(server)))
        }
        Err(e) if config.rdma == RdmaMode::On => Err(anyhow::Error::new(e).context("worker.rdma = \"on\"")),
        Err(e @ RdmaError::Register { .. }) => {
            tracing::warn!("RDMA not used: {e}");
            Ok(None)
        }
        Err(e) => {
            tracing::info!("RDMA not used: {e}");
            Ok(None)
        }
    }
}

/// A number that differs between two starts of a worker (time and process id, hashed).
fn instance_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    xxhash_rust::xxh3::xxh3_64(format!("{nanos}-{}", std::process::id()).as_bytes())
}
