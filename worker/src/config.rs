//! The worker's typed configuration, derived from the cluster config and the worker's id.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use hoard_transport::cluster::{ClusterConfig, EvictionKind, MountEntry, RdmaMode, S3Section, WorkerSection};
use hoard_ufs::S3Config;

/// Everything one worker needs to run.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's id.
    pub id: String,
    /// RPC address to listen on.
    pub listen: SocketAddr,
    /// Prometheus metrics address.
    pub metrics: Option<SocketAddr>,
    /// The cluster's shared secret.
    pub token: String,
    /// Page size in bytes.
    pub page_size: u64,
    /// Chunk size in bytes (read-ahead stays inside the chunk this worker owns).
    pub chunk_size: u64,
    /// Memory tier capacity in bytes.
    pub memory_capacity_bytes: u64,
    /// Eviction policy.
    pub eviction: EvictionKind,
    /// Map the memory tier from huge pages when reserved.
    pub memory_huge_pages: bool,
    /// Metadata cache time-to-live.
    pub metadata_ttl: Duration,
    /// Most metadata cache entries.
    pub metadata_entries: usize,
    /// Read-ahead window in bytes (0 disables).
    pub readahead_bytes: u64,
    /// Largest under-store GET when filling.
    pub fill_request_max_bytes: u64,
    /// Most concurrent under-store requests.
    pub ufs_concurrency: usize,
    /// Most requests in flight per connection.
    pub max_inflight_per_connection: usize,
    /// Verify page checksums when serving.
    pub verify_on_read: bool,
    /// The mounts.
    pub mounts: Vec<MountEntry>,
    /// S3 settings for `s3://` mounts.
    pub s3: S3Config,
    /// The mounts this worker coordinates (holds the namespace and journal of).
    pub coordinates: Vec<String>,
    /// Directory of the write journal.
    pub journal_dir: PathBuf,
    /// Multipart upload part size.
    pub part_size: u64,
    /// Most under-store operations of the persister at once.
    pub upload_concurrency: usize,
    /// Longest backoff between upload retries.
    pub upload_retry_max: Duration,
    /// Persisted written files whose metadata is kept.
    pub written_entries: usize,
    /// Idle write sessions are aborted after this long.
    pub session_idle_timeout: Duration,
    /// The shared-memory socket to serve local clients on (`None`: shared memory off).
    pub shm_socket: Option<PathBuf>,
    /// Whether to serve one-sided RDMA reads.
    pub rdma: RdmaMode,
    /// Which devices and GID to serve them on.
    pub rdma_settings: hoard_transport::rdma::ServerSettings,
    /// Register the NVMe tier's files too.
    pub rdma_nvme: bool,
    /// Directories of the NVMe tier (empty: none).
    pub nvme_dirs: Vec<PathBuf>,
    /// Bytes of the NVMe tier.
    pub nvme_capacity_bytes: u64,
}

impl WorkerConfig {
    /// The config of worker `id` of a cluster.
    ///
    /// # Errors
    /// When the cluster has no worker of that id.
    pub fn from_cluster(cluster: &ClusterConfig, id: &str) -> anyhow::Result<WorkerConfig> {
        // Destructure everything, so that a new config field cannot be forgotten here.
        let ClusterConfig {
            token,
            page_size,
            chunk_size,
            virtual_nodes: _,
            workers,
            mounts,
            s3,
            worker,
            client: _,
            gateway: _,
        } = cluster;
        let coordinates = mounts
            .iter()
            .filter(|m| cluster.coordinator_of(&m.name).is_some_and(|i| workers[i].id == id))
            .map(|m| m.name.clone())
            .collect();
        let Some(me) = workers.iter().find(|w| w.id == id) else {
            let ids: Vec<&str> = workers.iter().map(|w| w.id.as_str()).collect();
            bail!("no worker `{id}` in the cluster config (workers: {})", ids.join(", "));
        };
        let WorkerSection {
            eviction,
            memory_huge_pages,
            metadata_ttl,
            metadata_entries,
            readahead,
            fill_request_max,
            ufs_concurrency,
            max_inflight_per_connection,
            verify_on_read,
            part_size,
            upload_concurrency,
            upload_retry_max,
            written_entries,
            session_idle_timeout,
            shm,
            rdma,
            rdma_devices,
            rdma_gid_index,
            rdma_nvme,
        } = worker;
        let journal_dir = me.journal_dir.clone().unwrap_or_else(|| default_journal_dir(&me.id));
        let S3Section {
            endpoint,
            region,
            path_style,
            access_key_id,
            secret_access_key,
        } = s3;
        let fill_request_max_bytes = fill_request_max.as_u64().max(page_size.as_u64());
        Ok(WorkerConfig {
            id: me.id.clone(),
            listen: me.addr,
            metrics: me.metrics,
            token: token.clone(),
            page_size: page_size.as_u64(),
            chunk_size: chunk_size.as_u64(),
            memory_capacity_bytes: me.memory_capacity.as_u64(),
            eviction: *eviction,
            memory_huge_pages: *memory_huge_pages,
            metadata_ttl: *metadata_ttl,
            metadata_entries: usize::try_from(*metadata_entries).context("metadata_entries")?,
            readahead_bytes: readahead.as_u64(),
            fill_request_max_bytes,
            ufs_concurrency: (*ufs_concurrency).max(1) as usize,
            max_inflight_per_connection: (*max_inflight_per_connection).max(1) as usize,
            verify_on_read: *verify_on_read,
            mounts: mounts.clone(),
            coordinates,
            journal_dir,
            part_size: part_size.as_u64(),
            upload_concurrency: (*upload_concurrency).max(1) as usize,
            upload_retry_max: *upload_retry_max,
            written_entries: *written_entries as usize,
            session_idle_timeout: *session_idle_timeout,
            rdma: *rdma,
            rdma_settings: hoard_transport::rdma::ServerSettings {
                devices: rdma_devices.clone(),
                gid_index: *rdma_gid_index,
            },
            rdma_nvme: *rdma_nvme,
            nvme_dirs: me.nvme_dirs.clone(),
            nvme_capacity_bytes: me.nvme_capacity.as_u64(),
            shm_socket: shm.then(|| {
                me.shm_socket
                    .clone()
                    .unwrap_or_else(|| hoard_transport::shm::default_socket_path(&me.id, me.addr.port()))
            }),
            s3: S3Config {
                endpoint: endpoint.clone(),
                region: region.clone(),
                path_style: *path_style,
                access_key_id: access_key_id.clone(),
                secret_access_key: secret_access_key.clone(),
            },
        })
    }
}

/// `$HOARD_HOME/journal/<id>`, with `HOARD_HOME` defaulting to `~/.hoard`.
fn default_journal_dir(id: &str) -> PathBuf {
    let home = std::env::var_os("HOARD_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".hoard")))
        .unwrap_or_else(|| PathBuf::from(".hoard"));
    home.join("journal").join(id)
}
