//! Names of the worker's metrics, in one place. Shape: `subsystem.name_unit`; the Prometheus
//! exporter turns dots into underscores (`worker_page_hits`). Documented in `docs/metrics.md`.
//!
//! Stability: all names here are **stable** (dashboards depend on them) unless marked otherwise.

use metrics::{Counter, Histogram};

/// Request kinds, as the `kind` label spells them.
pub(crate) const REQUEST_KINDS: [&str; 20] = [
    "hello",
    "stat",
    "list",
    "read",
    "status",
    "load",
    "write_open",
    "write_data",
    "write_flush",
    "write_commit",
    "write_abort",
    "rename",
    "delete",
    "mkdir",
    "sync",
    "set_metadata",
    "locate",
    "lease",
    "rdma_connect",
    "compose",
];

/// Handles of the per-request metrics, looked up once: a labelled lookup on every request
/// costs a hash and a registry lookup on the hot path.
#[derive(Debug)]
pub(crate) struct RequestMetrics {
    requests: Vec<Counter>,
    latency_us: Vec<Histogram>,
    /// `worker.bytes_served{transport="tcp"}`.
    pub bytes_served_tcp: Counter,
    /// `worker.bytes_served{transport="shm"}`: bytes of the pages located for a client that
    /// copies them from shared memory.
    pub bytes_served_shm: Counter,
    /// `worker.bytes_served{transport="rdma"}`: bytes of the pages located for a client that
    /// reads them with one-sided RDMA READs.
    pub bytes_served_rdma: Counter,
}

impl RequestMetrics {
    pub(crate) fn new() -> Self {
        RequestMetrics {
            requests: REQUEST_KINDS
                .iter()
                .map(|k| metrics::counter!(REQUESTS, "kind" => *k))
                .collect(),
            latency_us: REQUEST_KINDS
                .iter()
                .map(|k| metrics::histogram!(REQUEST_LATENCY_US, "kind" => *k))
                .collect(),
            bytes_served_tcp: metrics::counter!(BYTES_SERVED, "transport" => "tcp"),
            bytes_served_shm: metrics::counter!(BYTES_SERVED, "transport" => "shm"),
            bytes_served_rdma: metrics::counter!(BYTES_SERVED, "transport" => "rdma"),
        }
    }

    /// Count one request of kind `REQUEST_KINDS[kind]` that took `micros`.
    pub(crate) fn record(&self, kind: usize, micros: f64) {
        self.requests[kind].increment(1);
        self.latency_us[kind].record(micros);
    }
}

/// Counter: page lookups served from the cache.
pub const PAGE_HITS: &str = "worker.page_hits";
/// Counter: page lookups that had to be filled from the under-store.
pub const PAGE_MISSES: &str = "worker.page_misses";
/// Counter: pages evicted.
pub const EVICTIONS: &str = "worker.evictions";
/// Counter: pages filled or written but not cached, because no slot of the memory tier could
/// be freed for them (every slot still being sent, or free space cut too small).
pub const PAGES_NOT_CACHED: &str = "worker.pages_not_cached";
/// Gauge: bytes of cached pages.
pub const CACHED_BYTES: &str = "worker.cached_bytes";
/// Gauge: cached pages.
pub const CACHED_PAGES: &str = "worker.cached_pages";
/// Gauge: page capacity of the memory tier in bytes.
pub const CAPACITY_BYTES: &str = "worker.capacity_bytes";
/// Gauge: bytes of page slots of a tier (`tier` = `memory`, `nvme`).
pub const TIER_CAPACITY_BYTES: &str = "worker.tier_capacity_bytes";
/// Gauge: bytes of pages a tier holds.
pub const TIER_USED_BYTES: &str = "worker.tier_used_bytes";
/// Counter: lookups a tier answered (`tier` = `memory`, `nvme`).
pub const TIER_HITS: &str = "worker.tier_hits";
/// Counter: bytes of pages read out of a tier.
pub const TIER_BYTES_READ: &str = "worker.tier_bytes_read";
/// Counter: pages written into the NVMe tier (evicted from memory).
pub const NVME_DEMOTIONS: &str = "worker.nvme_demotions";
/// Counter: pages evicted from memory and not written to the NVMe tier (no free slot then).
pub const NVME_DEMOTIONS_SKIPPED: &str = "worker.nvme_demotions_skipped";
/// Counter: pages promoted from the NVMe tier back into memory.
pub const NVME_PROMOTIONS: &str = "worker.nvme_promotions";
/// Gauge: NVMe tier writes not yet durable (the flusher's queue).
pub const NVME_UNFLUSHED: &str = "worker.nvme_unflushed";
/// Counter: pages the NVMe tier dropped to free slots.
pub const NVME_EVICTIONS: &str = "worker.nvme_evictions";
/// Gauge: bytes of pages held in their slots by leases (`Request::Lease`).
pub const LEASED_BYTES: &str = "worker.leased_bytes";
/// Counter, label `transport`: bytes of page data sent to clients.
pub const BYTES_SERVED: &str = "worker.bytes_served";
/// Counter, label `kind`: requests handled.
pub const REQUESTS: &str = "worker.requests";
/// Counter, label `status`: requests answered with an error.
pub const REQUEST_ERRORS: &str = "worker.request_errors";
/// Histogram, label `kind`: request handling time in microseconds.
pub const REQUEST_LATENCY_US: &str = "worker.request_latency_us";
/// Counter, label `op`: requests made to the under-store.
pub const UFS_REQUESTS: &str = "worker.ufs_requests";
/// Counter, label `op`: under-store requests that failed (a missing object is not a failure).
pub const UFS_ERRORS: &str = "worker.ufs_errors";
/// Histogram, label `op`: under-store request latency in microseconds.
pub const UFS_LATENCY_US: &str = "worker.ufs_latency_us";
/// Counter: bytes read from the under-store.
pub const UFS_BYTES: &str = "worker.ufs_bytes";
/// Counter: pages fetched ahead of a sequential reader.
pub const READAHEAD_PAGES: &str = "worker.readahead_pages";
/// Counter: pages whose checksum did not match when verified.
pub const CHECKSUM_FAILURES: &str = "worker.checksum_failures";
/// Gauge: bytes of files written in `back` mode and not yet in the under-store.
pub const WRITE_BACKLOG_BYTES: &str = "worker.write_backlog_bytes";
/// Gauge: entries (files, renames, deletes, mkdirs) not yet applied to the under-store.
pub const WRITE_BACKLOG_OPS: &str = "worker.write_backlog_ops";
/// Gauge: open write sessions.
pub const WRITE_SESSIONS: &str = "worker.write_sessions";
/// Counter: entries applied to the under-store by the persister.
pub const PERSISTED_OPS: &str = "worker.persisted_ops";
/// Counter: persister attempts that failed (each is retried).
pub const UPLOAD_FAILURES: &str = "worker.upload_failures";
/// Counter: bytes received from writers.
pub const BYTES_WRITTEN: &str = "worker.bytes_written";
