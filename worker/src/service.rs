//! The worker's RPC service: answers stat, list, read and status requests.
//!
//! Everything here is per request and shares nothing with other connections but the caches, so
//! a failing request (missing object, unreachable under-store) is answered with an error reply
//! and harms no one else.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hoard_transport::TransportKind;
use hoard_transport::region::{ArenaData, ArenaGenerations, StableMemory};
use hoard_transport::tcp::Handler;
use hoard_transport::wire::{
    ComposeRequest, DeleteRequest, FileMeta, LeaseRequest, ListEntry, ListReply, ListRequest, LoadReply, LocateReply,
    MAX_READ_BYTES, PageCrc, PageLocation, PathRequest, Payload, ReadReply, ReadRequest, RenameRequest, Reply, Request,
    Response, SetMetadataRequest, StatRequest, Status, WorkerStatus, WriteOpenRequest, WriteOpened, WriteSyncRequest,
};
use hoard_ufs::{ListItem, ObjectMeta, UfsError, UnderStore};
use tracing::Instrument;

use crate::leases::Leases;
use crate::metadata::{ListKey, MetadataCache};
use crate::metrics::{self, REQUEST_KINDS, RequestMetrics};
use crate::page_store::{FileId, Page, PageKey};
use crate::read_path::{Content, FillSource, ReadPages, ReadPath, error_chain, ufs_status};
use crate::ufs_meter::UfsMeter;
use crate::write::{MAX_WRITE, WriteError, WritePath, hidden_marker, hidden_staged};

/// Largest listing page a client may ask for.
const MAX_LIST_KEYS: u32 = 10_000;

/// State shared by all connections of one worker.
#[derive(Debug)]
pub struct WorkerService {
    id: String,
    mounts: HashMap<String, Arc<dyn UnderStore>>,
    metadata: Arc<MetadataCache>,
    read_path: Arc<ReadPath>,
    write: Arc<WritePath>,
    meter: Arc<UfsMeter>,
    verify_on_read: bool,
    started: Instant,
    bytes_served: AtomicU64,
    request_metrics: RequestMetrics,
    leases: Leases,
}

/// A region to register for RDMA: its id, its memory, and its generation words with the bytes
/// each stands for.
#[derive(Debug)]
pub struct RdmaRegionSource {
    /// The id locations name it by.
    pub id: u32,
    /// Its bytes.
    pub data: Arc<dyn StableMemory>,
    /// Its generation words.
    pub generations: Option<(Arc<dyn StableMemory>, u64)>,
}

impl WorkerService {
    /// A service over these mounts.
    pub fn new(
        id: String,
        mounts: HashMap<String, Arc<dyn UnderStore>>,
        metadata: Arc<MetadataCache>,
        read_path: Arc<ReadPath>,
        write: Arc<WritePath>,
        meter: Arc<UfsMeter>,
        verify_on_read: bool,
    ) -> Self {
        // Leases may hold a quarter of the memory tier.
        let leases = Leases::new(read_path.store().arena().capacity_bytes() / 4);
        WorkerService {
            id,
            mounts,
            metadata,
            read_path,
            write,
            meter,
            verify_on_read,
            started: Instant::now(),
            bytes_served: AtomicU64::new(0),
            request_metrics: RequestMetrics::new(),
            leases,
        }
    }

    /// The regions local clients may map: the memory tier's arena.
    ///
    /// # Errors
    /// When a descriptor cannot be duplicated.
    pub fn shared_regions(&self) -> std::io::Result<Vec<hoard_transport::shm::SharedRegion>> {
        Ok(vec![hoard_transport::shm::SharedRegion::of_arena(
            self.read_path.store().arena(),
        )?])
    }

    /// The regions RDMA clients may read, by id: the memory tier's arena (with its generation
    /// words) and, with `nvme`, each NVMe-tier data file (ids after the arena's; no generation
    /// words).
    pub fn rdma_regions(&self, nvme: bool) -> Vec<RdmaRegionSource> {
        let store = self.read_path.store();
        let arena = store.arena();
        let mut regions = vec![RdmaRegionSource {
            id: arena.id(),
            data: Arc::new(ArenaData(arena.clone())),
            generations: Some((Arc::new(ArenaGenerations(arena.clone())), arena.min_block())),
        }];
        if let Some(nvme) = store.nvme().filter(|_| nvme) {
            for (i, file) in nvme.data_regions().into_iter().enumerate() {
                regions.push(RdmaRegionSource {
                    id: arena.id() + 1 + i as u32,
                    data: file,
                    generations: None,
                });
            }
        }
        regions
    }

    /// Start the background work (the write path's persister); it stops with `shutdown`.
    pub fn start(self: &Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        self.write.start(shutdown.clone());
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some(this) = this.upgrade() else { return };
                this.leases.expire();
            }
        });
    }

    fn mount(&self, name: &str) -> Result<&Arc<dyn UnderStore>, WriteError> {
        self.mounts.get(name).ok_or_else(|| WriteError {
            status: Status::InvalidArgument,
            message: format!("no mount named `{name}`"),
        })
    }

    async fn stat(&self, req: StatRequest) -> Reply {
        let ufs = match self.mount(&req.mount) {
            Ok(ufs) => ufs,
            Err(e) => return write_error(e),
        };
        if let Some(overlay) = self.write.stat(&req.mount, &req.path) {
            return match overlay {
                Some(meta) => Reply::message(Response::Stat(meta)),
                None => not_found(&req.mount, &req.path),
            };
        }
        if let Some(cached) = self.metadata.stat(&req.mount, &req.path).filter(|_| !req.fresh) {
            return match cached {
                Some(meta) => Reply::message(Response::Stat(meta)),
                None => not_found(&req.mount, &req.path),
            };
        }
        match self.meter.call("stat", ufs.stat(&req.path)).await {
            Ok(meta) => {
                let meta = file_meta(meta);
                self.metadata.put_stat(&req.mount, &req.path, Some(meta.clone()));
                Reply::message(Response::Stat(meta))
            }
            Err(UfsError::NotFound { .. }) => {
                self.metadata.put_stat(&req.mount, &req.path, None);
                not_found(&req.mount, &req.path)
            }
            Err(e) => ufs_error_reply(&e),
        }
    }

    async fn list(&self, req: ListRequest) -> Reply {
        let ufs = match self.mount(&req.mount) {
            Ok(ufs) => ufs,
            Err(e) => return write_error(e),
        };
        if let Some(merged) = self.write.list(&req, req.max_keys.min(MAX_LIST_KEYS)).await {
            return match merged {
                Ok(reply) => Reply::message(Response::List(reply)),
                Err(e) => write_error(e),
            };
        }
        let key = ListKey {
            mount: req.mount.clone(),
            prefix: req.prefix.clone(),
            delimiter: req.delimiter.clone(),
            continuation: req.continuation.clone(),
            max_keys: req.max_keys.min(MAX_LIST_KEYS),
            markers: req.markers,
        };
        if let Some(cached) = self.metadata.list(&key) {
            return Reply::message(Response::List(cached));
        }
        let ufs_req = hoard_ufs::ListRequest {
            prefix: key.prefix.clone(),
            delimiter: key.delimiter.clone(),
            continuation: key.continuation.clone(),
            max_keys: key.max_keys,
        };
        match self.meter.call("list", ufs.list(&ufs_req)).await {
            Ok(page) => {
                let next_continuation = page.next_continuation.clone();
                let entries = page
                    .into_items()
                    .into_iter()
                    .filter(|item| {
                        matches!(item, ListItem::Prefix(_)) || !hidden_marker(item.key(), &key.prefix, key.markers)
                    })
                    .filter(|item| !hidden_staged(item.key(), &key.prefix))
                    .map(list_entry)
                    .collect();
                let reply = ListReply {
                    entries,
                    next_continuation,
                };
                self.metadata.put_list(key, reply.clone());
                Reply::message(Response::List(reply))
            }
            Err(e) => ufs_error_reply(&e),
        }
    }

    /// The pages of a read or load request.
    async fn pages(&self, req: &ReadRequest) -> Result<(Arc<FillSource>, ReadPages), Reply> {
        let ufs = self.mount(&req.file.mount).map_err(write_error)?.clone();
        if req.len > MAX_READ_BYTES {
            let message = format!("a read may ask for at most {MAX_READ_BYTES} bytes, not {}", req.len);
            return Err(Reply::error(Status::InvalidArgument, message));
        }
        let content = if self.write.holds(&req.file.mount, &req.file.path, &req.file.version) {
            Content::Written {
                write: self.write.clone(),
                mount: req.file.mount.clone(),
                path: req.file.path.clone(),
                version: req.file.version.clone(),
            }
        } else if WritePath::is_hoard_version(&req.file.version) {
            let message = format!("{} is no longer at version {}", req.file.path, req.file.version);
            return Err(Reply::error(Status::StaleVersion, message));
        } else {
            Content::Ufs {
                ufs,
                path: req.file.path.clone(),
                version: req.file.version.clone(),
            }
        };
        let src = Arc::new(FillSource {
            file: FileId::of(&req.file),
            content,
            size: req.file_size,
        });
        match self.read_path.read(&src, req.offset, req.len).await {
            Ok(pages) => Ok((src, pages)),
            Err(e) => {
                if e.status == Status::StaleVersion || e.status == Status::NotFound {
                    // Our cached stat may be what the client used: look again next time.
                    self.metadata.forget_stat(&req.file.mount, &req.file.path);
                }
                Err(Reply::error(e.status, e.message))
            }
        }
    }

    async fn load(&self, req: ReadRequest) -> Reply {
        match self.pages(&req).await {
            Ok((_, pages)) => Reply::message(Response::Loaded(LoadReply {
                bytes: pages.pages.iter().map(|(_, p)| p.data.len() as u64).sum(),
                pages: pages.pages.len() as u64,
                hit_pages: pages.hits.into(),
            })),
            Err(reply) => reply,
        }
    }

    async fn read(&self, req: ReadRequest) -> Reply {
        let (src, pages) = match self.pages(&req).await {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let end = req.offset.saturating_add(req.len).min(req.file_size);
        let ps = self.read_path.page_size();
        let mut payload = Vec::with_capacity(pages.pages.len());
        let mut crcs = Vec::new();
        for (index, page) in &pages.pages {
            if let Some(reply) = self.checksum_failure(&src, &req, *index, page) {
                return reply;
            }
            let page_start = index * ps;
            let from = req.offset.max(page_start) - page_start;
            let to = (end.min(page_start + page.data.len() as u64)).saturating_sub(page_start);
            if from >= to {
                continue;
            }
            if from == 0 && to == page.data.len() as u64 {
                crcs.push(PageCrc {
                    index: *index,
                    crc32c: page.crc32c,
                });
            }
            payload.push(page.data.slice(from as usize..to as usize));
        }
        let payload = Payload(payload);
        let len = payload.len();
        self.bytes_served.fetch_add(len, Ordering::Relaxed);
        self.request_metrics.bytes_served_tcp.increment(len);
        let reply = ReadReply {
            offset: req.offset,
            len,
            page_size: ps,
            pages: crcs,
            hit_pages: pages.hits,
        };
        Reply {
            message: Response::Read(reply),
            payload,
        }
    }

    /// `None` unless `verify_on_read` is set and the page fails its checksum: then the page is
    /// dropped, logged, and the answer is `ChecksumMismatch`.
    fn checksum_failure(&self, src: &FillSource, req: &ReadRequest, index: u64, page: &Page) -> Option<Reply> {
        if !self.verify_on_read || page.verify() {
            return None;
        }
        ::metrics::counter!(metrics::CHECKSUM_FAILURES).increment(1);
        self.read_path.store().remove(&PageKey { file: src.file, index });
        let message = format!("page {index} of {} failed its checksum; dropped", req.file.path);
        tracing::error!("{message}");
        Some(Reply::error(Status::ChecksumMismatch, message))
    }

    /// Where the range's pages sit in the memory tier's arena (misses filled first); pages not in
    /// the arena are left out, for the client to read. With `lease`, the located pages are held
    /// in their slots for that long (as long as the leases' limits allow).
    async fn locate(&self, req: ReadRequest, lease: Option<Duration>, via: TransportKind) -> Reply {
        let (src, pages) = match self.pages(&req).await {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let arena = self.read_path.store().arena();
        let mut located = Vec::with_capacity(pages.pages.len());
        let mut held = Vec::new();
        let mut bytes = 0;
        for (index, page) in &pages.pages {
            if let Some(reply) = self.checksum_failure(&src, &req, *index, page) {
                return reply;
            }
            // While `page` is held here its slot cannot be given back: the generation is its own.
            if let Some(at) = arena.locate(&page.data) {
                bytes += at.len;
                located.push(PageLocation {
                    index: *index,
                    region: at.region,
                    offset: at.offset,
                    len: at.len,
                    generation: at.generation,
                    crc32c: page.crc32c,
                });
                if lease.is_some() {
                    held.push(page.clone());
                }
            }
        }
        match via {
            TransportKind::Rdma => self.request_metrics.bytes_served_rdma.increment(bytes),
            _ => self.request_metrics.bytes_served_shm.increment(bytes),
        }
        let lease_ms = match lease {
            Some(want) if !held.is_empty() => {
                u32::try_from(self.leases.grant(held, want).as_millis()).unwrap_or(u32::MAX)
            }
            _ => 0,
        };
        Reply::message(Response::Located(LocateReply {
            page_size: self.read_path.page_size(),
            pages: located,
            hit_pages: pages.hits,
            lease_ms,
        }))
    }

    fn status(&self) -> Reply {
        let store = self.read_path.store();
        let stats = store.stats();
        Reply::message(Response::Status(WorkerStatus {
            worker_id: self.id.clone(),
            uptime_s: self.started.elapsed().as_secs(),
            capacity_bytes: store.capacity_bytes(),
            used_bytes: store.used_bytes(),
            pages: store.len() as u64,
            hits: stats.hits.load(Ordering::Relaxed),
            misses: stats.misses.load(Ordering::Relaxed),
            evictions: stats.evictions.load(Ordering::Relaxed),
            bytes_served: self.bytes_served.load(Ordering::Relaxed),
            ufs_requests: self.meter.requests(),
            backlog_bytes: self.write.backlog().0,
            backlog_ops: self.write.backlog().1,
            cache_only_bytes: self.write.cache_only_bytes(),
        }))
    }

    async fn write_open(&self, r: WriteOpenRequest) -> Reply {
        let metadata = r.metadata.into_iter().collect();
        match self
            .write
            .open_session(&r.mount, &r.path, r.append, r.exclusive, metadata)
            .await
        {
            Ok((handle, base_size)) => Reply::message(Response::WriteOpened(WriteOpened {
                handle,
                base_size,
                max_write: MAX_WRITE,
            })),
            Err(e) => write_error(e),
        }
    }

    async fn write_data(&self, handle: u64, offset: u64, payload: Bytes) -> Reply {
        match self.write.write(handle, offset, payload).await {
            Ok(n) => {
                ::metrics::counter!(metrics::BYTES_WRITTEN).increment(n);
                Reply::message(Response::Written(n))
            }
            Err(e) => write_error(e),
        }
    }

    async fn write_publish(&self, r: WriteSyncRequest, commit: bool) -> Reply {
        match self.write.publish(r.handle, r.len, commit, r.content).await {
            Ok(Some(meta)) if commit => Reply::message(Response::Committed(meta)),
            Ok(_) if commit => Reply::error(Status::Internal, "the commit published no file"),
            Ok(_) => Reply::message(Response::Done),
            Err(e) => write_error(e),
        }
    }

    async fn rename(&self, r: RenameRequest) -> Reply {
        done(self.write.rename(&r.mount, &r.src, &r.dst).await)
    }

    async fn delete(&self, r: DeleteRequest) -> Reply {
        done(self.write.delete(&r.mount, &r.path, r.recursive).await)
    }

    async fn mkdir(&self, r: PathRequest) -> Reply {
        done(self.write.mkdir(&r.mount, &r.path).await)
    }

    async fn sync(&self, r: PathRequest) -> Reply {
        done(self.write.sync(&r.mount, &r.path).await)
    }

    async fn compose(&self, r: ComposeRequest) -> Reply {
        match self.write.compose(r).await {
            Ok(meta) => Reply::message(Response::Committed(meta)),
            Err(e) => write_error(e),
        }
    }

    async fn set_metadata(&self, r: SetMetadataRequest) -> Reply {
        let metadata = r.metadata.into_iter().collect();
        match self.write.set_metadata(&r.mount, &r.path, metadata).await {
            Ok(meta) => Reply::message(Response::Committed(meta)),
            Err(e) => write_error(e),
        }
    }
}

fn write_error(e: WriteError) -> Reply {
    Reply::error(e.status, e.message)
}

fn done(result: Result<(), WriteError>) -> Reply {
    match result {
        Ok(()) => Reply::message(Response::Done),
        Err(e) => write_error(e),
    }
}

impl Handler for WorkerService {
    async fn handle(&self, request: Request, payload: Bytes, via: TransportKind) -> Reply {
        let kind_index = request_kind(&request);
        let kind = REQUEST_KINDS[kind_index];
        let span = match &request {
            Request::Stat(r) => tracing::debug_span!("rpc", kind, mount = %r.mount, key = %r.path),
            Request::List(r) => tracing::debug_span!("rpc", kind, mount = %r.mount, key = %r.prefix),
            Request::Read(r) | Request::Load(r) | Request::Locate(r) | Request::Lease(LeaseRequest { read: r, .. }) => {
                tracing::debug_span!("rpc", kind, mount = %r.file.mount, key = %r.file.path, offset = r.offset, len = r.len)
            }
            Request::WriteOpen(r) => tracing::debug_span!("rpc", kind, mount = %r.mount, key = %r.path),
            Request::Rename(r) => tracing::debug_span!("rpc", kind, mount = %r.mount, key = %r.src, dst = %r.dst),
            Request::Delete(r) => tracing::debug_span!("rpc", kind, mount = %r.mount, key = %r.path),
            Request::Mkdir(r) | Request::Sync(r) => tracing::debug_span!("rpc", kind, mount = %r.mount, key = %r.path),
            Request::SetMetadata(r) => tracing::debug_span!("rpc", kind, mount = %r.mount, key = %r.path),
            Request::Compose(r) => tracing::debug_span!("rpc", kind, mount = %r.mount, key = %r.dst),
            _ => tracing::debug_span!("rpc", kind),
        };
        let started = Instant::now();
        let reply = async {
            match request {
                Request::Stat(r) => self.stat(r).await,
                Request::List(r) => self.list(r).await,
                Request::Read(r) => self.read(r).await,
                Request::Status => self.status(),
                Request::Load(r) => self.load(r).await,
                Request::WriteOpen(r) => self.write_open(r).await,
                Request::WriteData(r) => self.write_data(r.handle, r.offset, payload).await,
                Request::WriteFlush(r) => self.write_publish(r, false).await,
                Request::WriteCommit(r) => self.write_publish(r, true).await,
                Request::WriteAbort(handle) => done(self.write.abort(handle).await),
                Request::Rename(r) => self.rename(r).await,
                Request::Delete(r) => self.delete(r).await,
                Request::Mkdir(r) => self.mkdir(r).await,
                Request::Sync(r) => self.sync(r).await,
                Request::SetMetadata(r) => self.set_metadata(r).await,
                Request::Compose(r) => self.compose(r).await,
                Request::Locate(r) => self.locate(r, None, via).await,
                Request::Lease(r) => {
                    self.locate(r.read, Some(Duration::from_millis(r.millis.into())), via)
                        .await
                }
                // The transport answers it (it sets up the connection's queue pair).
                Request::RdmaConnect(_) => Reply::error(Status::Unsupported, "RDMA is set up by the transport"),
                Request::Hello(_) => Reply::error(Status::InvalidArgument, "handshake already done"),
            }
        }
        .instrument(span)
        .await;
        self.request_metrics
            .record(kind_index, started.elapsed().as_secs_f64() * 1e6);
        if let Response::Error(e) = &reply.message {
            ::metrics::counter!(metrics::REQUEST_ERRORS, "status" => format!("{:?}", Status::from_u16(e.status)))
                .increment(1);
        }
        reply
    }
}

/// Index of the request's kind in [`REQUEST_KINDS`].
fn request_kind(request: &Request) -> usize {
    match request {
        Request::Hello(_) => 0,
        Request::Stat(_) => 1,
        Request::List(_) => 2,
        Request::Read(_) => 3,
        Request::Status => 4,
        Request::Load(_) => 5,
        Request::WriteOpen(_) => 6,
        Request::WriteData(_) => 7,
        Request::WriteFlush(_) => 8,
        Request::WriteCommit(_) => 9,
        Request::WriteAbort(_) => 10,
        Request::Rename(_) => 11,
        Request::Delete(_) => 12,
        Request::Mkdir(_) => 13,
        Request::Sync(_) => 14,
        Request::SetMetadata(_) => 15,
        Request::Locate(_) => 16,
        Request::Lease(_) => 17,
        Request::RdmaConnect(_) => 18,
        Request::Compose(_) => 19,
    }
}

fn list_entry(item: ListItem) -> ListEntry {
    match item {
        ListItem::Object(o) => ListEntry::File(file_meta(o)),
        ListItem::Prefix(p) => ListEntry::Prefix(p),
    }
}

fn file_meta(o: ObjectMeta) -> FileMeta {
    FileMeta {
        mtime_ms: o.mtime_ms(),
        path: o.path,
        size: o.size,
        version: o.version,
        homed: false,
        metadata: o.metadata.map(|m| m.into_iter().collect()),
    }
}

fn not_found(mount: &str, path: &str) -> Reply {
    Reply::error(Status::NotFound, format!("/{mount}/{path}: no such file"))
}

fn ufs_error_reply(e: &UfsError) -> Reply {
    Reply::error(ufs_status(e), error_chain(e))
}

#[cfg(test)]
mod tests;
