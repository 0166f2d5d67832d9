//! The cluster configuration file: one TOML file that every worker and client of a cluster reads.
//!
//! It lives in `transport` because, like the wire types, it is the contract between workers and
//! clients, which never depend on each other. Unknown keys are refused (`deny_unknown_fields`):
//! a misspelt key must not silently fall back to a default. Every key is documented in
//! `docs/configuration.md`; keep the two in step.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

/// Why a cluster config could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("read {path}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is invalid or has unknown keys.
    #[error("parse {path}")]
    Parse {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid cluster config: {0}")]
    Invalid(String),
}

/// Eviction policy of a worker's page store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EvictionKind {
    /// S3-FIFO: small FIFO + main FIFO + ghost queue (default).
    #[default]
    S3fifo,
    /// Least recently used.
    Lru,
}

/// One worker of the cluster.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerEntry {
    /// Unique id; its position on the placement ring derives from it.
    pub id: String,
    /// RPC address (`host:port`).
    pub addr: SocketAddr,
    /// Prometheus metrics HTTP address; no metrics endpoint when absent.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// Bytes of page memory.
    #[serde(default = "defaults::memory_capacity")]
    pub memory_capacity: ByteSize,
    /// Directory of the worker's write journal (blobs of written files and the namespace log);
    /// default `$HOARD_HOME/journal/<id>` (`~/.hoard/journal/<id>`).
    #[serde(default)]
    pub journal_dir: Option<std::path::PathBuf>,
    /// Path of the worker's shared-memory socket (for clients on its host); default
    /// `$XDG_RUNTIME_DIR` (or `/tmp`) `/hoard-<id>-<port>.sock`.
    #[serde(default)]
    pub shm_socket: Option<std::path::PathBuf>,
    /// Directories of the NVMe tier, one per disk (none: no NVMe tier). Each holds a
    /// preallocated data file and its index; the worker must be their only user.
    #[serde(default)]
    pub nvme_dirs: Vec<std::path::PathBuf>,
    /// Bytes of the NVMe tier, split evenly among `nvme_dirs`.
    #[serde(default)]
    pub nvme_capacity: ByteSize,
    /// Address the worker's process also serves the S3-compatible endpoint on (the
    /// `[gateway]` settings apply); none when absent.
    #[serde(default)]
    pub gateway: Option<SocketAddr>,
}

/// Which transport a client reads through (`client.transport`, or `HOARD_TRANSPORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TransportChoice {
    /// Shared memory with a worker on the same host that offers it, TCP otherwise (default).
    #[default]
    Auto,
    /// Shared memory only: a worker that cannot be reached through it counts as failed.
    Shm,
    /// TCP only.
    Tcp,
    /// One-sided RDMA reads only (even from a worker on this host): a worker that cannot be
    /// reached through it counts as failed.
    Rdma,
}

/// Whether a worker serves one-sided RDMA reads (`worker.rdma`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RdmaMode {
    /// When built with the `rdma` feature and an RDMA device is there; otherwise one log line
    /// says why not, and clients use shared memory or TCP (default).
    #[default]
    Auto,
    /// Required: the worker does not start without it.
    On,
    /// Never.
    Off,
}

impl std::str::FromStr for TransportChoice {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(TransportChoice::Auto),
            "shm" => Ok(TransportChoice::Shm),
            "tcp" => Ok(TransportChoice::Tcp),
            "rdma" => Ok(TransportChoice::Rdma),
            other => Err(ConfigError::Invalid(format!(
                "transport `{other}`: expected auto, shm, rdma or tcp"
            ))),
        }
    }
}

/// One mount: a name mapped to an under-store URI.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountEntry {
    /// Name: the first component of hoard paths (`/NAME/key`).
    pub name: String,
    /// `s3://bucket/prefix` or `file:///dir`.
    pub ufs: String,
    /// How writes reach the under-store.
    #[serde(default)]
    pub write_mode: WriteMode,
    /// With `write_mode = "cache-only"`: most bytes of files the mount may hold; writes past it
    /// are refused with `NoSpace`. In other modes: most bytes of staged files (the S3 gateway's
    /// multipart-upload parts not yet completed).
    #[serde(default = "defaults::cache_only_capacity")]
    pub cache_only_capacity: ByteSize,
    /// What the S3 gateway lets requests without a signature do with this mount's bucket.
    #[serde(default)]
    pub anonymous: AnonymousAccess,
}

/// What unsigned requests may do with a mount's bucket through the S3 gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AnonymousAccess {
    /// Nothing: every request must be signed with a configured key (default).
    #[default]
    None,
    /// Read and list objects (GetObject, HeadObject, the listings, HeadBucket).
    Read,
    /// Read, list, write and delete objects.
    ReadWrite,
}

/// An access key of the S3 gateway.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayKey {
    /// Access key id (what clients send as `aws_access_key_id`).
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

impl std::fmt::Debug for GatewayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayKey")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<hidden>")
            .finish()
    }
}

/// Settings of the S3-compatible endpoint (`hoard gateway`, or a worker with a `gateway`
/// address).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// The region the endpoint reports (HeadBucket, GetBucketLocation, ListBuckets); requests
    /// signed for any region are accepted.
    pub region: String,
    /// Access keys whose AWS Signature V4 the endpoint accepts.
    pub keys: Vec<GatewayKey>,
    /// Base domain for virtual-hosted-style requests (`BUCKET.DOMAIN`, with the port if clients
    /// send one). Without it every request is path-style; with it, path-style requests work
    /// when their `Host` is the domain itself or an IP address (any other name is taken as a
    /// bucket).
    pub domain: Option<String>,
    /// Bytes one GET asks the cluster for at a time (a streamed body is fed piece by piece).
    pub get_piece: ByteSize,
    /// Pieces of one GET read ahead in parallel.
    pub get_parallel: u32,
    /// Multipart uploads neither completed nor aborted for this long are aborted.
    #[serde(with = "humantime_serde")]
    pub multipart_expiry: Duration,
    /// Most bytes of request headers (a request over it is refused).
    pub max_header_bytes: ByteSize,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            region: "us-east-1".into(),
            keys: Vec::new(),
            domain: None,
            get_piece: ByteSize::mib(8),
            get_parallel: 4,
            multipart_expiry: Duration::from_secs(7 * 24 * 3600),
            max_header_bytes: ByteSize::kib(64),
        }
    }
}

/// How a mount's writes reach its under-store (see `docs/semantics.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// Acknowledged once the under-store has the data; the data is cached too (default).
    #[default]
    Through,
    /// Acknowledged once the data is fsync'd in the coordinator's journal; uploaded in the
    /// background, across restarts.
    Back,
    /// Kept in the journal only, never uploaded; deleted only by the user.
    CacheOnly,
}

/// How to reach S3 (for `s3://` mounts). Unset keys come from the standard AWS environment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct S3Section {
    /// Endpoint URL of an S3-compatible server.
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most non-AWS servers.
    pub path_style: bool,
    /// Static access key id (else `AWS_ACCESS_KEY_ID` or the profile chain).
    pub access_key_id: Option<String>,
    /// Static secret key.
    pub secret_access_key: Option<String>,
}

/// Settings every worker of the cluster shares.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSection {
    /// Page store eviction policy.
    pub eviction: EvictionKind,
    /// Map the memory tier from 2 MiB huge pages (falling back to normal pages, with one
    /// warning, when too few are reserved).
    pub memory_huge_pages: bool,
    /// How long stat results and listings are trusted before the under-store is asked again.
    #[serde(with = "humantime_serde")]
    pub metadata_ttl: Duration,
    /// Most cached stat results and listing pages.
    pub metadata_entries: u32,
    /// How far ahead of a sequential reader pages are fetched.
    pub readahead: ByteSize,
    /// Most bytes one under-store GET fetches when filling pages.
    pub fill_request_max: ByteSize,
    /// Most concurrent under-store requests of one worker.
    pub ufs_concurrency: u32,
    /// Most requests in flight on one client connection.
    pub max_inflight_per_connection: u32,
    /// Verify each page's CRC32C when serving it, not only when filling it.
    pub verify_on_read: bool,
    /// Part size of multipart uploads of written files (at least 5 MiB, S3's minimum).
    pub part_size: ByteSize,
    /// Most under-store uploads, copies and deletes of written data in flight at once.
    pub upload_concurrency: u32,
    /// Longest wait between retries of a failed upload (the first wait is 100 ms, and each next one doubles).
    #[serde(with = "humantime_serde")]
    pub upload_retry_max: Duration,
    /// Files written through hoard whose metadata the coordinator keeps after they are
    /// persisted (so readers keep their version and cache); older ones are forgotten.
    pub written_entries: u32,
    /// A write session with no request for this long is aborted.
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
    /// Serve clients on the worker's host through shared memory (a Unix socket that hands them
    /// the memory tier's regions).
    pub shm: bool,
    /// Serve one-sided RDMA reads: `auto`, `on` or `off`.
    pub rdma: RdmaMode,
    /// RDMA devices to register the regions on (`ibv_devices` names); empty: every device.
    pub rdma_devices: Vec<String>,
    /// GID index to use on each device's port 1; unset: the first IPv4-mapped (RoCE v2) GID,
    /// else index 0.
    pub rdma_gid_index: Option<u32>,
    /// Register the NVMe tier's files for RDMA too. Off by default: registration pins the
    /// files' pages in memory (a tier larger than memory cannot be), and clients are handed
    /// only memory-tier locations so far.
    pub rdma_nvme: bool,
}

impl Default for WorkerSection {
    fn default() -> Self {
        WorkerSection {
            eviction: EvictionKind::S3fifo,
            memory_huge_pages: true,
            metadata_ttl: Duration::from_secs(5),
            metadata_entries: 100_000,
            readahead: ByteSize::mib(8),
            fill_request_max: ByteSize::mib(8),
            ufs_concurrency: 64,
            max_inflight_per_connection: 256,
            verify_on_read: false,
            part_size: ByteSize::mib(16),
            upload_concurrency: 8,
            upload_retry_max: Duration::from_secs(30),
            written_entries: 100_000,
            session_idle_timeout: Duration::from_secs(600),
            shm: true,
            rdma: RdmaMode::Auto,
            rdma_devices: Vec::new(),
            rdma_gid_index: None,
            rdma_nvme: false,
        }
    }
}

/// Settings of clients.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSection {
    /// A request to a worker that takes longer fails over to the next owner.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Connecting (and the handshake) to a worker that takes longer fails over.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// After a failure, a worker is skipped for this long.
    #[serde(with = "humantime_serde")]
    pub worker_retry_after: Duration,
    /// TCP connections per worker; requests spread over them.
    pub connections_per_worker: u32,
    /// Largest byte range one read request asks a worker for.
    pub max_request_bytes: ByteSize,
    /// Most read requests one read has in flight.
    pub parallel_requests: u32,
    /// Workers tried (in ring order) before reading the under-store directly.
    pub max_worker_attempts: u32,
    /// Read, stat and list the under-store directly when no worker can serve (loads never do:
    /// loading into no cache is pointless).
    pub ufs_fallback: bool,
    /// Verify the CRC32C of whole pages received.
    pub verify_checksums: bool,
    /// Deadline of one write request (data, commit, rename, delete): longer than
    /// `request_timeout`, as a commit in `through` mode waits for the under-store.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// How reads reach workers: `auto`, `shm`, `rdma` or `tcp` (the `HOARD_TRANSPORT`
    /// environment variable overrides it).
    pub transport: TransportChoice,
    /// RDMA device to read through; unset: the first one with an active port.
    pub rdma_device: Option<String>,
    /// GID index on that device's port 1; unset: the first IPv4-mapped (RoCE v2) GID, else 0.
    pub rdma_gid_index: Option<u32>,
    /// How long a reader spins on the completion queue before it sleeps until the completion
    /// event (a longer spin costs CPU, a shorter one a wake-up per read).
    #[serde(with = "humantime_serde")]
    pub rdma_busy_poll: Duration,
    /// Registered buffers of 1 MiB that RDMA reads land in (the most bytes in flight at once).
    pub rdma_buffers: u32,
    /// Fence the generation words' READs behind the page bytes' READs, so that the validity
    /// check holds on any RDMA device (one more round trip per chain of READs); `false` relies
    /// on the device executing a queue pair's READs in order, as Soft-RoCE does.
    pub rdma_fence: bool,
    /// Page locations a shared-memory client remembers per worker, so that a hot page is read
    /// again with no message at all.
    pub location_cache_entries: u32,
}

impl Default for ClientSection {
    fn default() -> Self {
        ClientSection {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            worker_retry_after: Duration::from_secs(5),
            connections_per_worker: 2,
            max_request_bytes: ByteSize::mib(4),
            parallel_requests: 8,
            max_worker_attempts: 2,
            ufs_fallback: true,
            verify_checksums: true,
            write_timeout: Duration::from_secs(120),
            transport: TransportChoice::Auto,
            rdma_device: None,
            rdma_gid_index: None,
            rdma_busy_poll: Duration::from_micros(100),
            rdma_buffers: 16,
            rdma_fence: true,
            location_cache_entries: 262_144,
        }
    }
}

/// The cluster config file, as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Shared secret every connection's handshake must present.
    pub token: String,
    /// Unit of caching.
    #[serde(default = "defaults::page_size")]
    pub page_size: ByteSize,
    /// Unit of placement: pages of one chunk of a file live on one worker.
    #[serde(default = "defaults::chunk_size")]
    pub chunk_size: ByteSize,
    /// Points per worker on the placement ring.
    #[serde(default = "defaults::virtual_nodes")]
    pub virtual_nodes: u32,
    /// The workers.
    pub workers: Vec<WorkerEntry>,
    /// The mounts.
    #[serde(default)]
    pub mounts: Vec<MountEntry>,
    /// S3 connection settings.
    #[serde(default)]
    pub s3: S3Section,
    /// Worker settings.
    #[serde(default)]
    pub worker: WorkerSection,
    /// Client settings.
    #[serde(default)]
    pub client: ClientSection,
    /// S3 gateway settings.
    #[serde(default)]
    pub gateway: GatewaySection,
}

mod defaults {
    use bytesize::ByteSize;
    pub fn memory_capacity() -> ByteSize {
        ByteSize::gib(1)
    }
    pub fn page_size() -> ByteSize {
        ByteSize::mib(1)
    }
    pub fn chunk_size() -> ByteSize {
        ByteSize::mib(64)
    }
    pub fn virtual_nodes() -> u32 {
        1024
    }
    pub fn cache_only_capacity() -> ByteSize {
        ByteSize::gib(10)
    }
}

impl ClusterConfig {
    /// Read, parse and validate a config file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and what is wrong.
    pub fn load(path: impl AsRef<Path>) -> Result<ClusterConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    /// Parse and validate config text.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or [`ConfigError::Invalid`].
    pub fn parse(text: &str) -> Result<ClusterConfig, ConfigError> {
        let config: ClusterConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<text>".into(),
            source: Box::new(e),
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.token.is_empty() {
            return invalid("`token` must not be empty".into());
        }
        let page = self.page_size.as_u64();
        if !page.is_power_of_two() || !(4096..=(64 << 20)).contains(&page) {
            return invalid(format!(
                "`page_size` must be a power of two from 4 KiB to 64 MiB, not {page}"
            ));
        }
        let chunk = self.chunk_size.as_u64();
        if chunk < page || !chunk.is_multiple_of(page) {
            return invalid(format!(
                "`chunk_size` ({chunk}) must be a multiple of `page_size` ({page})"
            ));
        }
        if self.virtual_nodes == 0 {
            return invalid("`virtual_nodes` must be at least 1".into());
        }
        if self.workers.is_empty() {
            return invalid("at least one [[workers]] entry is needed".into());
        }
        for (i, w) in self.workers.iter().enumerate() {
            if w.id.is_empty() {
                return invalid(format!("worker #{i} has an empty `id`"));
            }
            if self.workers[..i].iter().any(|o| o.id == w.id || o.addr == w.addr) {
                return invalid(format!("worker `{}`: duplicate id or addr {}", w.id, w.addr));
            }
            if w.memory_capacity.as_u64() < page {
                return invalid(format!("worker `{}`: `memory_capacity` is smaller than one page", w.id));
            }
            if !w.nvme_dirs.is_empty() && w.nvme_capacity.as_u64() < page * w.nvme_dirs.len() as u64 {
                return invalid(format!(
                    "worker `{}`: `nvme_capacity` must hold at least one page per directory of `nvme_dirs`",
                    w.id
                ));
            }
        }
        for (i, m) in self.mounts.iter().enumerate() {
            if m.name.is_empty() || m.name.contains('/') || m.name.starts_with('.') {
                return invalid(format!(
                    "mount name `{}` must be non-empty, without `/`, not start with `.`",
                    m.name
                ));
            }
            if self.mounts[..i].iter().any(|o| o.name == m.name) {
                return invalid(format!("duplicate mount `{}`", m.name));
            }
            if !(m.ufs.starts_with("s3://") || m.ufs.starts_with("file:///")) {
                return invalid(format!(
                    "mount `{}`: `ufs` must be s3://bucket/prefix or file:///dir",
                    m.name
                ));
            }
        }
        if self.client.connections_per_worker == 0 || self.client.parallel_requests == 0 {
            return invalid("`client.connections_per_worker` and `client.parallel_requests` must be at least 1".into());
        }
        let request = self.client.max_request_bytes.as_u64();
        if request < page || !request.is_multiple_of(page) || request > crate::wire::MAX_READ_BYTES {
            return invalid(format!(
                "`client.max_request_bytes` ({request}) must be a multiple of `page_size` ({page}) and at most {}",
                crate::wire::MAX_READ_BYTES
            ));
        }
        let part = self.worker.part_size.as_u64();
        if !((5 << 20)..=(5 << 30)).contains(&part) {
            return invalid(format!(
                "`worker.part_size` ({part}) must be from 5 MiB to 5 GiB (S3's limits)"
            ));
        }
        if self.worker.upload_concurrency == 0 {
            return invalid("`worker.upload_concurrency` must be at least 1".into());
        }
        self.validate_gateway()
    }

    fn validate_gateway(&self) -> Result<(), ConfigError> {
        let g = &self.gateway;
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if g.region.is_empty() {
            return invalid("`gateway.region` must not be empty".into());
        }
        for (i, k) in g.keys.iter().enumerate() {
            if k.access_key.is_empty() || k.secret_key.is_empty() {
                return invalid(format!(
                    "gateway key #{i}: `access_key` and `secret_key` must not be empty"
                ));
            }
            if g.keys[..i].iter().any(|o| o.access_key == k.access_key) {
                return invalid(format!("gateway key `{}` is listed twice", k.access_key));
            }
        }
        if g.get_piece.as_u64() < 4096 || g.get_piece.as_u64() > crate::wire::MAX_READ_BYTES || g.get_parallel == 0 {
            return invalid(format!(
                "`gateway.get_piece` must be from 4 KiB to {} bytes and `gateway.get_parallel` at least 1",
                crate::wire::MAX_READ_BYTES
            ));
        }
        if g.max_header_bytes.as_u64() < 8192 {
            return invalid("`gateway.max_header_bytes` must be at least 8 KiB".into());
        }
        let gateways: Vec<SocketAddr> = self.workers.iter().filter_map(|w| w.gateway).collect();
        if gateways.iter().enumerate().any(|(i, a)| gateways[..i].contains(a)) {
            return invalid("two workers serve the gateway on the same address".into());
        }
        Ok(())
    }

    /// The mount coordinator's view: which worker (index into `workers`) holds the namespace and
    /// journal of `mount`.
    pub fn coordinator_of(&self, mount: &str) -> Option<usize> {
        let ids: Vec<&str> = self.workers.iter().map(|w| w.id.as_str()).collect();
        crate::ring::Ring::new(&ids, self.virtual_nodes).owner(crate::ring::mount_key(mount))
    }

    /// The worker with this id.
    pub fn worker(&self, id: &str) -> Option<&WorkerEntry> {
        self.workers.iter().find(|w| w.id == id)
    }

    /// The mount with this name.
    pub fn mount(&self, name: &str) -> Option<&MountEntry> {
        self.mounts.iter().find(|m| m.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        token = "t0ken"
        [[workers]]
        id = "w1"
        addr = "127.0.0.1:7301"
        [[mounts]]
        name = "data"
        ufs = "file:///tmp/x"
    "#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = ClusterConfig::parse(MINIMAL).expect("valid");
        assert_eq!(c.page_size, ByteSize::mib(1));
        assert_eq!(c.chunk_size, ByteSize::mib(64));
        assert_eq!(c.worker.eviction, EvictionKind::S3fifo);
        assert_eq!(c.workers[0].memory_capacity, ByteSize::gib(1));
        assert_eq!(c.mount("data").map(|m| m.ufs.as_str()), Some("file:///tmp/x"));
    }

    #[test]
    fn sizes_and_durations_parse_from_strings() {
        let text = format!("{MINIMAL}\n[worker]\nmetadata_ttl = \"250ms\"\nreadahead = \"2 MiB\"\n");
        let c = ClusterConfig::parse(&text).expect("valid");
        assert_eq!(c.worker.metadata_ttl, Duration::from_millis(250));
        assert_eq!(c.worker.readahead, ByteSize::mib(2));
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values() {
        assert!(matches!(
            ClusterConfig::parse(&format!("{MINIMAL}\nbogus = 1\n")),
            Err(ConfigError::Parse { .. })
        ));
        let bad_page = MINIMAL.replace("token = \"t0ken\"", "token = \"t\"\npage_size = 3000");
        assert!(matches!(ClusterConfig::parse(&bad_page), Err(ConfigError::Invalid(m)) if m.contains("page_size")));
        let dup = format!("{MINIMAL}\n[[mounts]]\nname = \"data\"\nufs = \"file:///y\"\n");
        assert!(matches!(ClusterConfig::parse(&dup), Err(ConfigError::Invalid(m)) if m.contains("duplicate mount")));
        let no_token = MINIMAL.replace("t0ken", "");
        assert!(matches!(ClusterConfig::parse(&no_token), Err(ConfigError::Invalid(_))));
    }
}
