//! The client: stat, list, read and load through the cache, with failover.
//!
//! Every request goes to the ring owner of its key: a path's metadata owner for stat and list,
//! the owner of (file, chunk) for reads. A worker that fails or misses the deadline is skipped
//! for the next owner on the ring; when `max_worker_attempts` workers have failed, the client
//! reads the under-store itself. A read therefore never fails because a cache worker died.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use hoard_transport::cluster::{ClusterConfig, MountEntry, TransportChoice};
use hoard_transport::rdma::{ClientSettings, ReadFailure};
use hoard_transport::region::Location;
use hoard_transport::shm::ShmTransport;
use hoard_transport::tcp::ConnectOptions;
use hoard_transport::wire::{
    FileKey, FileMeta, LIST_AFTER_TOKEN, LeaseRequest, ListEntry, ListReply, ListRequest, PageLocation, Payload,
    ReadRequest, Reply, Request, Response, StatRequest, Status, WorkerStatus,
};
use hoard_ufs::{S3Config, UfsError, UnderStore};

use crate::error::{ClientError, ClientResult};
use crate::membership::{ConnectPolicy, Direct, Link, RdmaDevice, TransportCounts, WorkerHandle};
use crate::path::HoardPath;
use crate::ring::{Ring, chunk_key, mount_key};

mod load;
mod plan;
mod write;

pub use load::{LoadProgress, LoadSummary};
pub use write::{ComposeOptions, CreateOptions, Writer};

/// What [`Client::list_keys`] lists: S3's `ListObjectsV2` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyQuery {
    /// Keys start with this (any string, not only a directory).
    pub prefix: String,
    /// Group keys by this after the prefix (usually `/`); `None` lists every key.
    pub delimiter: Option<String>,
    /// The token an earlier page returned (wins over `start_after`).
    pub continuation: Option<String>,
    /// Start after this key.
    pub start_after: Option<String>,
    /// Most entries in the page (0: the worker's default, 1,000).
    pub max_keys: u32,
}

/// A worker's answer, or why none of the candidates answered.
type OwnerResult = Result<Reply, String>;

/// Why a piece was not read out of a worker's regions (shared memory or RDMA).
#[derive(Debug)]
enum DirectFallback {
    /// The file changed since it was stat'ed.
    Stale,
    /// Read it through a socket instead, into this buffer.
    Socket(BytesMut),
}

/// Append bytes `[offset, offset + len)` of a file to `buf`, copied out of shared memory from
/// the locations of the pages they lie in (`pages`, in order). `Err` names the first page that
/// was no longer where its location said (`buf` then holds part of the range: truncate it).
fn copy_pages(
    shm: &ShmTransport,
    pages: &[PageLocation],
    page_size: u64,
    offset: u64,
    len: u64,
    buf: &mut BytesMut,
) -> Result<(), u64> {
    let end = offset + len;
    let start = buf.len();
    for page in pages {
        let page_start = page.index * page_size;
        let from = offset.max(page_start) - page_start;
        let to = end.min(page_start + page_size) - page_start;
        // A page shorter than the part of the range it must hold (not the file's last page, or
        // a short fill) is not used: the socket path checks and reads it.
        if to <= from || page.len < to {
            return Err(page.index);
        }
        let at = Location::from(page);
        shm.append(&at, from, (to - from) as usize, buf)
            .map_err(|_| page.index)?;
    }
    if (buf.len() - start) as u64 != len {
        return Err(pages.last().map_or(0, |p| p.index));
    }
    Ok(())
}

/// How reading pages out of a worker's regions went.
enum DirectRead {
    /// The range is in the buffer.
    Done,
    /// This page was no longer where its location said (the buffer is as it was).
    Stale(u64),
    /// The link failed (RDMA): read another way.
    Failed(String),
    /// This read cannot go this way now, the link is fine: read it another way.
    Elsewhere,
}

/// Append bytes `[offset, offset + len)` of a file to `buf`, read out of the worker's regions
/// through `direct` from the locations of the pages they lie in (`pages`, in order).
async fn read_direct(
    direct: Direct<'_>,
    pages: &[PageLocation],
    page_size: u64,
    (offset, len): (u64, u64),
    buf: &mut BytesMut,
    timeout: Duration,
    verify: bool,
) -> DirectRead {
    match direct {
        Direct::Shm(shm) => {
            let start = buf.len();
            match copy_pages(shm, pages, page_size, offset, len, buf) {
                Ok(()) => DirectRead::Done,
                Err(index) => {
                    buf.truncate(start);
                    DirectRead::Stale(index)
                }
            }
        }
        Direct::Rdma(_, rdma) => match rdma
            .read(
                pages,
                page_size,
                offset..offset + len,
                buf,
                Instant::now() + timeout,
                verify,
            )
            .await
        {
            Ok(()) => DirectRead::Done,
            Err(ReadFailure::Stale(index)) => DirectRead::Stale(index),
            Err(ReadFailure::Failed(e)) => DirectRead::Failed(e.to_string()),
            Err(ReadFailure::Elsewhere(why)) => {
                tracing::debug!("read over TCP instead of RDMA: {why}");
                DirectRead::Elsewhere
            }
        },
    }
}

/// How a piece of a read failed.
#[derive(Debug)]
enum PieceError {
    /// The file changed since it was stat'ed.
    Stale,
    /// Anything else.
    Fatal(ClientError),
}

impl From<ClientError> for PieceError {
    fn from(e: ClientError) -> Self {
        PieceError::Fatal(e)
    }
}

/// A handle to a hoard cluster. Cheap to clone; clones share connections.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClusterConfig,
    ring: Ring,
    workers: Vec<WorkerHandle>,
    policy: ConnectPolicy,
    ufs: tokio::sync::Mutex<HashMap<String, Arc<dyn UnderStore>>>,
}

/// Builds a [`Client`].
#[derive(Debug, Default)]
pub struct ClientBuilder {
    config: Option<ClusterConfig>,
    client_name: Option<String>,
    transport: Option<TransportChoice>,
}

impl ClientBuilder {
    /// Use this cluster config.
    pub fn cluster(mut self, config: ClusterConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Read through this transport, whatever `HOARD_TRANSPORT` and the config say.
    pub fn transport(mut self, transport: TransportChoice) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Name this client in the workers' logs.
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = Some(name.into());
        self
    }

    /// The client. No connection is opened until the first request.
    ///
    /// # Errors
    /// [`ClientError::Config`] when no cluster config was given, or `HOARD_TRANSPORT` is not
    /// `auto`, `shm`, `rdma` or `tcp`.
    pub fn build(self) -> ClientResult<Client> {
        let config = self
            .config
            .ok_or(ClientError::Config(hoard_transport::cluster::ConfigError::Invalid(
                "no cluster config".into(),
            )))?;
        let ids: Vec<&str> = config.workers.iter().map(|w| w.id.as_str()).collect();
        let ring = Ring::new(&ids, config.virtual_nodes);
        let conns = config.client.connections_per_worker as usize;
        let locations = config.client.location_cache_entries as usize;
        let workers = config
            .workers
            .iter()
            .map(|w| WorkerHandle::new(w.clone(), conns, locations))
            .collect();
        let transport = match (self.transport, std::env::var("HOARD_TRANSPORT")) {
            (Some(t), _) => t,
            (None, Ok(v)) if !v.is_empty() => v.parse()?,
            _ => config.client.transport,
        };
        let mut options = ConnectOptions::new(config.token.clone());
        options.connect_timeout = config.client.connect_timeout;
        if let Some(name) = self.client_name {
            options.client_name = name;
        }
        let policy = ConnectPolicy {
            options,
            request_timeout: config.client.request_timeout,
            retry_after: config.client.worker_retry_after,
            transport,
            host: hoard_transport::shm::host_id(),
            stats: Arc::default(),
            rdma: Arc::new(RdmaDevice::new(ClientSettings {
                device: config.client.rdma_device.clone(),
                gid_index: config.client.rdma_gid_index,
                busy_poll: config.client.rdma_busy_poll,
                buffers: config.client.rdma_buffers.max(1) as usize,
                fence: config.client.rdma_fence,
            })),
        };
        let ufs = tokio::sync::Mutex::new(HashMap::new());
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                ring,
                workers,
                policy,
                ufs,
            }),
        })
    }
}

impl Client {
    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client of the cluster described by a config file.
    ///
    /// # Errors
    /// [`ClientError::Config`] when the file cannot be read or is invalid.
    pub fn from_config_file(path: impl AsRef<Path>) -> ClientResult<Client> {
        Client::builder().cluster(ClusterConfig::load(path)?).build()
    }

    /// The cluster config.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// The cluster's mounts.
    pub fn mounts(&self) -> &[MountEntry] {
        &self.inner.config.mounts
    }

    /// The transport reads use (`client.transport`, or `HOARD_TRANSPORT`).
    pub fn transport(&self) -> TransportChoice {
        self.inner.policy.transport
    }

    /// Bytes and requests this client moved over each transport so far.
    pub fn transport_counts(&self) -> TransportCounts {
        self.inner.policy.stats.snapshot()
    }

    /// Size and version of a file.
    ///
    /// # Errors
    /// [`ClientError::NotFound`], [`ClientError::InvalidPath`], [`ClientError::NoSuchMount`], and
    /// [`ClientError::Unavailable`] when neither workers nor the under-store answer.
    pub async fn stat(&self, path: &str) -> ClientResult<FileMeta> {
        self.stat_path(&HoardPath::parse(path)?).await
    }

    async fn stat_path(&self, p: &HoardPath) -> ClientResult<FileMeta> {
        self.stat_owner(p, false).await
    }

    /// Stat through the path's metadata owner; `fresh` makes the owner ask the under-store
    /// (the caller saw the file change) and update its cache for everyone.
    async fn stat_owner(&self, p: &HoardPath, fresh: bool) -> ClientResult<FileMeta> {
        self.check_mount(&p.mount)?;
        if p.key.is_empty() || p.key.ends_with('/') {
            return Err(ClientError::NotFound { path: p.to_string() });
        }
        let req = Request::Stat(StatRequest {
            mount: p.mount.clone(),
            path: p.key.clone(),
            fresh,
        });
        match self.call_owners(mount_key(&p.mount), req).await {
            Ok(Reply {
                message: Response::Stat(meta),
                ..
            }) => Ok(meta),
            Ok(reply) => Err(self.reply_error(p, reply)),
            Err(last) => self.stat_ufs(p, last).await,
        }
    }

    /// Stat straight from the under-store, when no worker answers.
    async fn stat_ufs(&self, p: &HoardPath, last: String) -> ClientResult<FileMeta> {
        self.check_fallback(p, last)?;
        let ufs = self.ufs(&p.mount).await?;
        ufs.stat(&p.key).await.map(file_meta).map_err(|e| ufs_error(p, e))
    }

    /// One page of the entries under a directory (`/MOUNT/dir`), grouped by `/`, or of every
    /// key under a prefix when `recursive`.
    ///
    /// # Errors
    /// As [`Client::stat`].
    pub async fn list_page(
        &self,
        path: &str,
        recursive: bool,
        continuation: Option<String>,
        max_keys: u32,
    ) -> ClientResult<ListReply> {
        let p = HoardPath::parse(path)?;
        self.check_mount(&p.mount)?;
        let prefix = p.dir_prefix();
        let delimiter = (!recursive).then(|| "/".to_owned());
        let req = ListRequest {
            mount: p.mount.clone(),
            prefix: prefix.clone(),
            delimiter,
            continuation,
            max_keys,
            markers: false,
        };
        self.list_request(&p, req).await
    }

    /// One page of the keys of `mount` under a prefix, as an S3 listing has them: any prefix
    /// and delimiter, directory markers listed as objects, starting after a key or an earlier
    /// page's token.
    ///
    /// # Errors
    /// As [`Client::stat`].
    pub async fn list_keys(&self, mount: &str, query: KeyQuery) -> ClientResult<ListReply> {
        // Any prefix is a valid S3 prefix (`a/.` included): no path rules here.
        let p = HoardPath {
            mount: mount.to_owned(),
            key: query.prefix.clone(),
        };
        self.check_mount(&p.mount)?;
        let continuation = query
            .continuation
            .or_else(|| query.start_after.map(|key| format!("{LIST_AFTER_TOKEN}{key}")));
        let req = ListRequest {
            mount: p.mount.clone(),
            prefix: query.prefix,
            delimiter: query.delimiter,
            continuation,
            max_keys: query.max_keys,
            markers: true,
        };
        self.list_request(&p, req).await
    }

    async fn list_request(&self, p: &HoardPath, req: ListRequest) -> ClientResult<ListReply> {
        match self.call_owners(mount_key(&p.mount), Request::List(req.clone())).await {
            Ok(Reply {
                message: Response::List(list),
                ..
            }) => Ok(list),
            Ok(reply) => Err(self.reply_error(p, reply)),
            Err(last) => self.list_ufs(p, req, last).await,
        }
    }

    /// A listing straight from the under-store. A continuation that names a key to start after
    /// (the coordinator's form) is followed by skipping the keys up to it.
    async fn list_ufs(&self, p: &HoardPath, req: ListRequest, last: String) -> ClientResult<ListReply> {
        self.check_fallback(p, last)?;
        let ufs = self.ufs(&p.mount).await?;
        let after = req
            .continuation
            .as_deref()
            .and_then(|c| c.strip_prefix(LIST_AFTER_TOKEN))
            .map(str::to_owned);
        let mut ufs_req = hoard_ufs::ListRequest {
            prefix: req.prefix,
            delimiter: req.delimiter,
            continuation: if after.is_some() { None } else { req.continuation },
            max_keys: req.max_keys,
        };
        loop {
            let page = ufs.list(&ufs_req).await.map_err(|e| ufs_error(p, e))?;
            let next_continuation = page.next_continuation.clone();
            let entries: Vec<ListEntry> = page
                .into_items()
                .into_iter()
                .filter(|item| after.as_deref().is_none_or(|a| item.key() > a))
                .map(list_entry)
                .collect();
            if !entries.is_empty() || next_continuation.is_none() {
                return Ok(ListReply {
                    entries,
                    next_continuation,
                });
            }
            ufs_req.continuation = next_continuation;
        }
    }

    /// Whether the under-store may be used directly when workers fail (`client.ufs_fallback`).
    fn check_fallback(&self, p: &HoardPath, last: String) -> ClientResult<()> {
        if self.inner.config.client.ufs_fallback {
            tracing::debug!(path = %p, "using the under-store directly: {last}");
            return Ok(());
        }
        Err(ClientError::Unavailable {
            path: p.to_string(),
            source: last.into(),
        })
    }

    /// Every entry under a directory (all pages).
    ///
    /// # Errors
    /// As [`Client::list_page`].
    pub async fn list(&self, path: &str, recursive: bool) -> ClientResult<Vec<ListEntry>> {
        let mut entries = Vec::new();
        let mut continuation = None;
        loop {
            let page = self.list_page(path, recursive, continuation, 1000).await?;
            entries.extend(page.entries);
            match page.next_continuation {
                Some(token) => continuation = Some(token),
                None => return Ok(entries),
            }
        }
    }

    /// Bytes `[offset, offset + len)` of a file (fewer at its end).
    ///
    /// # Errors
    /// As [`Client::stat`]; [`ClientError::Unstable`] when the file keeps changing under the read.
    pub async fn read(&self, path: &str, offset: u64, len: u64) -> ClientResult<Bytes> {
        let p = HoardPath::parse(path)?;
        let mut meta = self.stat_path(&p).await?;
        for _ in 0..3 {
            match self.read_version(&p, &meta, offset, len).await {
                Ok(bytes) => return Ok(bytes),
                Err(PieceError::Fatal(e)) => return Err(e),
                // The workers' metadata may still hold the old version: ask the under-store.
                Err(PieceError::Stale) => meta = self.stat_owner(&p, true).await?,
            }
        }
        Err(ClientError::Unstable { path: p.to_string() })
    }

    /// Open a file: stat it once, then read ranges of that version with no further stat.
    ///
    /// # Errors
    /// As [`Client::stat`].
    pub async fn open(&self, path: &str) -> ClientResult<OpenFile> {
        let path = HoardPath::parse(path)?;
        let meta = self.stat_path(&path).await?;
        Ok(OpenFile {
            client: self.clone(),
            path,
            meta,
        })
    }

    /// The whole file.
    ///
    /// # Errors
    /// As [`Client::read`].
    pub async fn read_all(&self, path: &str) -> ClientResult<Bytes> {
        self.read(path, 0, u64::MAX).await
    }

    /// Read a range of a file version known from [`Client::stat`], split over chunks and workers
    /// and fetched in parallel.
    async fn read_version(&self, p: &HoardPath, meta: &FileMeta, offset: u64, len: u64) -> Result<Bytes, PieceError> {
        Ok(self
            .read_version_into(p, meta, offset, len, BytesMut::new())
            .await?
            .freeze())
    }

    /// As [`Client::read_version`], appending to `buf`. The range's room in `buf` is cut into
    /// one slice per request, each reply's payload is read straight into its slice, and the
    /// slices are joined back without copying: the bytes cross memory once, socket to `buf`.
    async fn read_version_into(
        &self,
        p: &HoardPath,
        meta: &FileMeta,
        offset: u64,
        len: u64,
        mut buf: BytesMut,
    ) -> Result<BytesMut, PieceError> {
        let end = offset.saturating_add(len).min(meta.size);
        if offset >= end {
            return Ok(buf);
        }
        let file = FileKey {
            mount: p.mount.clone(),
            path: p.key.clone(),
            version: meta.version.clone(),
        };
        let cfg = &self.inner.config;
        let pieces = plan::split(
            offset,
            end,
            cfg.chunk_size.as_u64(),
            cfg.client.max_request_bytes.as_u64(),
        );
        buf.reserve((end - offset) as usize);
        let mut spare = buf.split_off(buf.len());
        let single = pieces.len() == 1;
        if let [(off, n)] = pieces[..] {
            // One piece (a small read): out of shared memory if it can be, with no stream of
            // futures to drive (that costs a hot 4 KiB read a third of its time). Over a socket
            // the stream below is kept: awaited straight from here a socket read was measured
            // slower (docs/benchmarks.md).
            let key = self.read_key(&file, meta.homed, off);
            match Box::pin(self.read_piece_direct(key, &file, meta.size, off, n, spare)).await {
                Ok(part) => {
                    buf.unsplit(part);
                    return Ok(buf);
                }
                Err(DirectFallback::Stale) => return Err(PieceError::Stale),
                Err(DirectFallback::Socket(back)) => spare = back,
            }
        }
        let slices: Vec<(u64, u64, BytesMut)> = pieces
            .into_iter()
            .map(|(off, n)| {
                let rest = spare.split_off(n as usize);
                (off, n, std::mem::replace(&mut spare, rest))
            })
            .collect();
        let parts: Vec<BytesMut> = futures::stream::iter(slices)
            .map(|(off, n, slice)| self.read_piece(&file, meta, off, n, slice, !single))
            .buffered(cfg.client.parallel_requests as usize)
            .try_collect()
            .await?;
        for part in parts {
            // O(1) when the part is still the slice it was given; a copy after a failover.
            buf.unsplit(part);
        }
        Ok(buf)
    }

    /// One piece of a read, inside one chunk, into `buf` (empty, with room for `len` bytes):
    /// out of shared memory (if `try_shm`), else from its owners, else from the under-store.
    async fn read_piece(
        &self,
        file: &FileKey,
        meta: &FileMeta,
        offset: u64,
        len: u64,
        buf: BytesMut,
        try_shm: bool,
    ) -> Result<BytesMut, PieceError> {
        let (homed, size) = (meta.homed, meta.size);
        let key = self.read_key(file, homed, offset);
        let buf = if try_shm {
            match self.read_piece_direct(key, file, size, offset, len, buf).await {
                Ok(done) => return Ok(done),
                Err(DirectFallback::Stale) => return Err(PieceError::Stale),
                Err(DirectFallback::Socket(buf)) => buf,
            }
        } else {
            buf
        };
        let req = Request::Read(ReadRequest {
            file: file.clone(),
            file_size: size,
            offset,
            len,
        });
        let verify = self.inner.config.client.verify_checksums;
        let check = |message: &Response, payload: &[u8]| match message {
            Response::Read(r) => plan::check_read(r, payload, offset, len, size, verify),
            _ => Ok(()),
        };
        // Only the coordinator holds a homed file: another worker could only send the reader to
        // an older version in the under-store.
        let attempts = if homed { Some(1) } else { None };
        match self.call_owners_into_limited(key, attempts, req, buf, check).await {
            Ok((Response::Read(_), payload)) => Ok(payload),
            Ok((Response::Error(e), _)) if e.status == Status::StaleVersion as u16 => Err(PieceError::Stale),
            Ok((message, _)) => {
                let p = HoardPath {
                    mount: file.mount.clone(),
                    key: file.path.clone(),
                };
                Err(PieceError::Fatal(self.reply_error(&p, Reply::message(message))))
            }
            Err(last) if homed => Err(PieceError::Fatal(ClientError::Unavailable {
                path: format!("/{}/{}", file.mount, file.path),
                source: format!("written through hoard and held by the mount's coordinator: {last}").into(),
            })),
            Err(last) => {
                let bytes = self.read_piece_ufs(file, offset, len, last).await?;
                let mut buf = BytesMut::with_capacity(bytes.len());
                buf.extend_from_slice(&bytes);
                Ok(buf)
            }
        }
    }

    /// One piece of a read out of the regions of the first owner of `key` (copied from shared
    /// memory, or read with RDMA), when the client is connected to it that way: from cached page
    /// locations with no message at all, else after asking the worker where the pages are
    /// (`Locate`, which fills misses). Anything this path cannot do (no such link to that worker,
    /// pages outside its regions, a failed call or RDMA read) hands `buf` back for the socket
    /// path, which also fails over.
    async fn read_piece_direct(
        &self,
        key: u64,
        file: &FileKey,
        size: u64,
        offset: u64,
        len: u64,
        mut buf: BytesMut,
    ) -> Result<BytesMut, DirectFallback> {
        let inner = &self.inner;
        let Some(worker) = self.first_owner(key) else {
            return Err(DirectFallback::Socket(buf));
        };
        let link = match worker.direct_link(&inner.policy).await {
            Ok(Some(link)) => link,
            Ok(None) => return Err(DirectFallback::Socket(buf)),
            Err(e) => {
                tracing::warn!(worker = %worker.entry.id, "worker failed, trying the next one: {e}");
                worker.avoid(inner.policy.retry_after);
                return Err(DirectFallback::Socket(buf));
            }
        };
        let Some(direct) = link.direct() else {
            return Err(DirectFallback::Socket(buf));
        };
        let kind = link.kind();
        let instance = direct.hello().instance;
        let page_size = direct.hello().page_size;
        let (first, last) = (offset / page_size, (offset + len - 1) / page_size);
        let timeout = inner.policy.request_timeout;
        let verify = inner.config.client.verify_checksums;
        // Read the range out of the worker's regions from these locations, counting it; on a
        // stale location, forget it; on a failed link, say so (`None`).
        let read = async |pages: &[PageLocation], cached: bool, buf: &mut BytesMut| -> Option<bool> {
            match read_direct(direct, pages, page_size, (offset, len), buf, timeout, verify).await {
                DirectRead::Done => {
                    inner.policy.stats.copied(kind, len, cached);
                    Some(true)
                }
                DirectRead::Stale(gone) => {
                    worker.locations.lock().forget(file, gone);
                    Some(false)
                }
                DirectRead::Failed(e) => {
                    worker.rdma_failed(&inner.policy, &e);
                    None
                }
                DirectRead::Elsewhere => None,
            }
        };
        let cached = worker.locations.lock().get(instance, file, first, last);
        if let Some(pages) = cached {
            match read(&pages, true, &mut buf).await {
                Some(true) => return Ok(buf),
                Some(false) => {}
                None => return Err(DirectFallback::Socket(buf)),
            }
        }
        let req = Request::Locate(ReadRequest {
            file: file.clone(),
            file_size: size,
            offset,
            len,
        });
        // A slot can be reused between the answer and the copy (the page was evicted): ask again.
        for _ in 0..3 {
            let reply = tokio::time::timeout(
                inner.policy.request_timeout,
                link.direct_call(req.clone(), &inner.policy),
            )
            .await;
            let located = match reply {
                Ok(Ok(Response::Located(l))) => l,
                Ok(Ok(Response::Error(e))) if e.status == Status::StaleVersion as u16 => {
                    return Err(DirectFallback::Stale);
                }
                Ok(Ok(_)) => return Err(DirectFallback::Socket(buf)),
                Ok(Err(e)) => {
                    tracing::warn!(worker = %worker.entry.id, "worker failed, trying the next one: {e}");
                    worker.avoid(inner.policy.retry_after);
                    return Err(DirectFallback::Socket(buf));
                }
                Err(_) => {
                    worker.avoid(inner.policy.retry_after);
                    return Err(DirectFallback::Socket(buf));
                }
            };
            let pages = located.pages;
            let whole = pages.len() as u64 == last - first + 1
                && pages.iter().zip(first..=last).all(|(page, want)| page.index == want);
            if !whole {
                // Some pages are outside the regions (held by the write path, or not cached
                // for want of a free slot): the socket path reads them.
                return Err(DirectFallback::Socket(buf));
            }
            worker.locations.lock().insert(instance, file, &pages);
            match read(&pages, false, &mut buf).await {
                Some(true) => return Ok(buf),
                Some(false) => {}
                None => return Err(DirectFallback::Socket(buf)),
            }
        }
        Err(DirectFallback::Socket(buf))
    }

    /// See [`OpenFile::lend`].
    async fn lend(
        &self,
        p: &HoardPath,
        meta: &FileMeta,
        offset: u64,
        len: u64,
        duration: Duration,
    ) -> ClientResult<PageLease> {
        let inner = &self.inner;
        // Checked again with the worker's own page size once it answers.
        let page_size = inner.config.page_size.as_u64();
        let refuse = |reason: String| ClientError::NotLendable {
            path: p.to_string(),
            reason,
        };
        let end = offset.checked_add(len).filter(|end| *end <= meta.size);
        let Some(end) = end.filter(|end| len > 0 && offset / page_size == (end - 1) / page_size) else {
            return Err(refuse(format!(
                "[{offset}, +{len}) is not inside one page ({page_size} bytes) of the file ({} bytes)",
                meta.size
            )));
        };
        let file = FileKey {
            mount: p.mount.clone(),
            path: p.key.clone(),
            version: meta.version.clone(),
        };
        let key = self.read_key(&file, meta.homed, offset);
        let worker = self
            .first_owner(key)
            .ok_or_else(|| refuse("no worker available".into()))?;
        let link = match worker.direct_link(&inner.policy).await {
            Ok(Some(link)) if link.shm().is_some() => link,
            Ok(_) => {
                return Err(refuse(format!(
                    "worker {} is not reached through shared memory",
                    worker.entry.id
                )));
            }
            Err(e) => return Err(refuse(format!("worker {}: {e}", worker.entry.id))),
        };
        let millis = u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
        let request = Request::Lease(LeaseRequest {
            read: ReadRequest {
                file,
                file_size: meta.size,
                offset,
                len,
            },
            millis,
        });
        let sent = Instant::now();
        let located =
            match tokio::time::timeout(inner.policy.request_timeout, link.direct_call(request, &inner.policy)).await {
                Ok(Ok(Response::Located(l))) => l,
                Ok(Ok(Response::Error(e))) if e.status == Status::StaleVersion as u16 => {
                    return Err(ClientError::Changed { path: p.to_string() });
                }
                Ok(Ok(other)) => return Err(self.reply_error(p, Reply::message(other))),
                Ok(Err(e)) => return Err(refuse(format!("worker {}: {e}", worker.entry.id))),
                Err(_) => return Err(refuse(format!("worker {}: no answer in time", worker.entry.id))),
            };
        let (Some(page), true) = (located.pages.first(), located.lease_ms > 0) else {
            return Err(refuse(format!(
                "worker {} did not lease the page (it holds too much for leases, or the page is not in its memory tier)",
                worker.entry.id
            )));
        };
        let granted = Duration::from_millis(located.lease_ms.into());
        // The worker's clock started after ours; a margin covers the rest (scheduling).
        let margin = (granted / 10).min(Duration::from_secs(1));
        let worker_page = located.page_size;
        let page_start = page.index * worker_page;
        let inside = worker_page > 0
            && page.index == offset / worker_page
            && (end - 1) / worker_page == page.index
            && end - page_start <= page.len;
        if !inside {
            return Err(refuse(format!(
                "worker {} pages by {worker_page} bytes and answered page {} ({} bytes): not the range asked for",
                worker.entry.id, page.index, page.len
            )));
        }
        Ok(PageLease {
            at: page.into(),
            from: offset - page_start,
            len: (end - offset) as usize,
            expires: sent + granted - margin,
            link,
            path: p.to_string(),
        })
    }

    async fn read_piece_ufs(&self, file: &FileKey, offset: u64, len: u64, last: String) -> Result<Bytes, PieceError> {
        let hoard_path = HoardPath {
            mount: file.mount.clone(),
            key: file.path.clone(),
        };
        self.check_fallback(&hoard_path, last)?;
        let ufs = self.ufs(&file.mount).await?;
        match ufs
            .read_range(&file.path, offset..offset + len, Some(&file.version))
            .await
        {
            Ok(bytes) => Ok(bytes),
            Err(UfsError::VersionMismatch { .. }) => Err(PieceError::Stale),
            Err(e) => Err(ufs_error(&hoard_path, e).into()),
        }
    }

    /// The first owner of `key`, in ring order, not being avoided.
    fn first_owner(&self, key: u64) -> Option<&WorkerHandle> {
        self.owners(key).next()
    }

    /// The owners of `key`, in ring order, skipping workers being avoided.
    fn owners(&self, key: u64) -> impl Iterator<Item = &WorkerHandle> {
        let inner = &self.inner;
        inner
            .ring
            .owners(key)
            .map(|i| &inner.workers[i])
            .filter(|w| !w.is_avoided())
    }

    /// Placement key of the read of a file at `offset`: the owner of its chunk, or for a file
    /// written through hoard (`homed`) the mount's coordinator, which holds it.
    fn read_key(&self, file: &FileKey, homed: bool, offset: u64) -> u64 {
        if homed {
            mount_key(&file.mount)
        } else {
            chunk_key(&file.mount, &file.path, offset / self.inner.config.chunk_size.as_u64())
        }
    }

    /// Send a request to the owners of `key` in ring order (skipping workers that failed
    /// recently) until one gives an answer that is not worth retrying elsewhere. `check` vets a
    /// successful reply (length, checksums); a reply it rejects counts as that worker failing.
    async fn call_owners(&self, key: u64, request: Request) -> OwnerResult {
        let (message, payload) = self
            .call_owners_into(key, request, BytesMut::new(), |_, _| Ok(()))
            .await?;
        Ok(Reply {
            message,
            payload: Payload::single(payload.freeze()),
        })
    }

    /// As [`Client::call_owners`], with the reply's payload landing in `recv` (the first worker
    /// tried gets it; a retry gets a fresh buffer of the same capacity).
    async fn call_owners_into(
        &self,
        key: u64,
        request: Request,
        recv: BytesMut,
        check: impl Fn(&Response, &[u8]) -> Result<(), String>,
    ) -> Result<(Response, BytesMut), String> {
        self.call_owners_into_limited(key, None, request, recv, check).await
    }

    /// As [`Client::call_owners_into`], trying at most `attempts` workers (default: the
    /// config's `max_worker_attempts`).
    async fn call_owners_into_limited(
        &self,
        key: u64,
        attempts: Option<usize>,
        request: Request,
        recv: BytesMut,
        check: impl Fn(&Response, &[u8]) -> Result<(), String>,
    ) -> Result<(Response, BytesMut), String> {
        let inner = &self.inner;
        let attempts = attempts.unwrap_or(inner.config.client.max_worker_attempts as usize);
        let candidates = self.owners(key).take(attempts);
        let mut last = "no worker available".to_owned();
        let capacity = recv.capacity();
        let mut recv = Some(recv);
        for worker in candidates {
            let buf = recv.take().unwrap_or_else(|| BytesMut::with_capacity(capacity));
            match worker.call_into(&inner.policy, request.clone(), buf).await {
                Ok(reply) => match &reply.0 {
                    Response::Error(e) if Status::from_u16(e.status).is_retryable_elsewhere() => {
                        last = format!(
                            "worker {}: {:?}: {}",
                            worker.entry.id,
                            Status::from_u16(e.status),
                            e.message
                        );
                    }
                    _ => match check(&reply.0, &reply.1) {
                        Ok(()) => return Ok(reply),
                        Err(why) => {
                            tracing::warn!(worker = %worker.entry.id, "bad reply, trying the next worker: {why}");
                            worker.avoid(inner.policy.retry_after);
                            last = format!("worker {}: {why}", worker.entry.id);
                        }
                    },
                },
                Err(e) => last = format!("worker {}: {e}", worker.entry.id),
            }
        }
        Err(last)
    }

    /// Turn a worker's unexpected or error reply into a client error.
    fn reply_error(&self, p: &HoardPath, reply: Reply) -> ClientError {
        match reply.message {
            Response::Error(e) if e.status == Status::NotFound as u16 => ClientError::NotFound { path: p.to_string() },
            Response::Error(e) => ClientError::Worker {
                status: Status::from_u16(e.status),
                message: e.message,
            },
            other => ClientError::Worker {
                status: Status::Internal,
                message: format!("unexpected reply {:?}", other.kind()),
            },
        }
    }

    fn check_mount(&self, mount: &str) -> ClientResult<()> {
        match self.inner.config.mount(mount) {
            Some(_) => Ok(()),
            None => Err(ClientError::NoSuchMount {
                mount: mount.to_owned(),
            }),
        }
    }

    /// The under-store of a mount, opened on first use.
    async fn ufs(&self, mount: &str) -> ClientResult<Arc<dyn UnderStore>> {
        let mut opened = self.inner.ufs.lock().await;
        if let Some(ufs) = opened.get(mount) {
            return Ok(ufs.clone());
        }
        let entry = self
            .inner
            .config
            .mount(mount)
            .ok_or_else(|| ClientError::NoSuchMount { mount: mount.into() })?;
        let s3 = &self.inner.config.s3;
        let s3 = S3Config {
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            path_style: s3.path_style,
            access_key_id: s3.access_key_id.clone(),
            secret_access_key: s3.secret_access_key.clone(),
        };
        let ufs = hoard_ufs::open_uri(&entry.ufs, &s3).await?;
        opened.insert(mount.to_owned(), ufs.clone());
        Ok(ufs)
    }

    /// Every worker's status, in config order (`Err` for a worker that does not answer).
    pub async fn cluster_status(&self) -> Vec<(String, Result<WorkerStatus, String>)> {
        let inner = &self.inner;
        let asks = inner.workers.iter().map(|w| async move {
            let status = match w.call(&inner.policy, Request::Status).await {
                Ok(Reply {
                    message: Response::Status(s),
                    ..
                }) => Ok(s),
                Ok(other) => Err(format!("unexpected reply {:?}", other.message.kind())),
                Err(e) => Err(e.to_string()),
            };
            (w.entry.id.clone(), status)
        });
        futures::future::join_all(asks).await
    }
}

/// A file version opened by [`Client::open`]: every read sees the bytes of that version.
#[derive(Debug, Clone)]
pub struct OpenFile {
    client: Client,
    path: HoardPath,
    meta: FileMeta,
}

impl OpenFile {
    /// Size and version of the opened file.
    pub fn meta(&self) -> &FileMeta {
        &self.meta
    }

    /// Bytes `[offset, offset + len)` of the opened version appended to `buf`, and `buf` back.
    /// Reusing one buffer across calls (clear it, pass it again) saves allocating and faulting
    /// in fresh memory for every large read.
    ///
    /// # Errors
    /// As [`OpenFile::read`].
    pub async fn read_into(&self, offset: u64, len: u64, buf: BytesMut) -> ClientResult<BytesMut> {
        match self
            .client
            .read_version_into(&self.path, &self.meta, offset, len, buf)
            .await
        {
            Ok(bytes) => Ok(bytes),
            Err(PieceError::Fatal(e)) => Err(e),
            Err(PieceError::Stale) => Err(ClientError::Changed {
                path: self.path.to_string(),
            }),
        }
    }

    /// Lend bytes `[offset, offset + len)` of the opened version, which must lie in one page,
    /// for up to `duration` (at most 30 s): the worker holds the page in its slot meanwhile, and
    /// the bytes are read in place out of its shared memory ([`PageLease::with_bytes`]), never
    /// copied. For buffers handed to other code without a copy (the Python binding's).
    ///
    /// # Errors
    /// [`ClientError::NotLendable`] when the range crosses a page or the file's end, the worker
    /// is not reached through shared memory (another host, `HOARD_TRANSPORT=tcp`), or it holds
    /// too much for leases already; [`ClientError::Changed`] when the file was replaced;
    /// otherwise as [`Client::read`].
    pub async fn lend(&self, offset: u64, len: u64, duration: Duration) -> ClientResult<PageLease> {
        self.client.lend(&self.path, &self.meta, offset, len, duration).await
    }

    /// Bytes `[offset, offset + len)` of the opened version (fewer at its end).
    ///
    /// # Errors
    /// [`ClientError::Changed`] when the file was replaced since it was opened; otherwise as
    /// [`Client::read`].
    pub async fn read(&self, offset: u64, len: u64) -> ClientResult<Bytes> {
        match self.client.read_version(&self.path, &self.meta, offset, len).await {
            Ok(bytes) => Ok(bytes),
            Err(PieceError::Fatal(e)) => Err(e),
            Err(PieceError::Stale) => Err(ClientError::Changed {
                path: self.path.to_string(),
            }),
        }
    }
}

/// A page of a file lent by its worker out of shared memory, for the duration of a lease: the
/// bytes are read in place, never copied ([`OpenFile::lend`]).
#[derive(Debug)]
pub struct PageLease {
    link: Arc<Link>,
    at: Location,
    from: u64,
    len: usize,
    expires: Instant,
    path: String,
}

impl PageLease {
    /// Bytes lent.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is lent.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Until when the bytes are the file's: the lease as the worker granted it, counted from
    /// before the request was sent, less a margin.
    pub fn expires_at(&self) -> Instant {
        self.expires
    }

    /// Run `f` on the lent bytes, in place, and return what it returns. The bytes are checked to
    /// be the page's after `f` too (the slot's generation), so a caller that overruns the lease
    /// gets an error, never another page's bytes.
    ///
    /// # Errors
    /// [`ClientError::LeaseExpired`] when the lease has run out (before `f`, which then does not
    /// run), or the page was let go while `f` ran (its result is dropped).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> ClientResult<R> {
        let expired = || ClientError::LeaseExpired {
            path: self.path.clone(),
        };
        if Instant::now() >= self.expires {
            return Err(expired());
        }
        let shm = self.link.shm().ok_or_else(expired)?;
        shm.with_part(&self.at, self.from, self.len, f).map_err(|_| expired())
    }

    /// The lent bytes, copied (for a caller that wants to keep them past the lease).
    ///
    /// # Errors
    /// As [`PageLease::with_bytes`].
    pub fn to_bytes(&self) -> ClientResult<Bytes> {
        self.with_bytes(Bytes::copy_from_slice)
    }
}

/// A failed direct under-store call as the caller sees it: a missing object, or an unavailable
/// store.
fn ufs_error(p: &HoardPath, e: UfsError) -> ClientError {
    match e {
        UfsError::NotFound { .. } => ClientError::NotFound { path: p.to_string() },
        e => ClientError::Unavailable {
            path: p.to_string(),
            source: Box::new(e),
        },
    }
}

fn file_meta(o: hoard_ufs::ObjectMeta) -> FileMeta {
    FileMeta {
        mtime_ms: o.mtime_ms(),
        path: o.path,
        size: o.size,
        version: o.version,
        homed: false,
        metadata: o.metadata.map(|m| m.into_iter().collect()),
    }
}

fn list_entry(item: hoard_ufs::ListItem) -> ListEntry {
    match item {
        hoard_ufs::ListItem::Object(o) => ListEntry::File(file_meta(o)),
        hoard_ufs::ListItem::Prefix(p) => ListEntry::Prefix(p),
    }
}
