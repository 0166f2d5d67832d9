//! The cluster's workers as the client sees them: connections, and which ones to avoid.
//!
//! Membership is the static list of the cluster config. Each worker has a small pool of
//! connections opened on first use; a worker that fails a request is avoided for
//! `worker_retry_after`, then tried again.
//!
//! A connection is TCP, or shared memory when the worker is on this host and offers it (its TCP
//! handshake says where its Unix socket is, and on which host it runs): the first connection
//! to such a worker is TCP, and every one after it (the first included, re-opened at once)
//! goes through the socket. Elsewhere, when the worker offers RDMA in its TCP handshake and this
//! process has an RDMA device, the connection sets up a queue pair with the worker and reads
//! pages with one-sided READs (its TCP side carries everything else). `client.transport` (or
//! `HOARD_TRANSPORT`) forces one of them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hoard_transport::cluster::{TransportChoice, WorkerEntry};
use hoard_transport::rdma::{ClientDevice, ClientSettings, RdmaLink};
use hoard_transport::shm::{MappedRegions, ShmTransport};
use hoard_transport::tcp::{ConnectOptions, TcpTransport};
use hoard_transport::wire::{FileKey, PageLocation, Payload, Reply, Request, Response, Status};
use hoard_transport::{Transport, TransportError, TransportKind, TransportResult};
use parking_lot::Mutex;

/// One worker and its connections.
#[derive(Debug)]
pub struct WorkerHandle {
    /// The worker's config entry.
    pub entry: WorkerEntry,
    connections: Vec<tokio::sync::Mutex<Option<Arc<Link>>>>,
    next: AtomicUsize,
    avoid_until: Mutex<Option<Instant>>,
    /// Where the worker's shared-memory socket is, once a TCP handshake offered one this host
    /// can use.
    shm_socket: Mutex<Option<PathBuf>>,
    /// The worker instance's regions as mapped by the last shared-memory connection (the next
    /// one to the same instance shares them).
    mapped: Mutex<Option<Arc<MappedRegions>>>,
    /// Where pages of this worker sit in its regions, as its answers to `Locate` said.
    pub(crate) locations: Mutex<LocationCache>,
    /// Until when RDMA is not tried with this worker (its queue pair failed).
    rdma_off_until: Mutex<Option<Instant>>,
}

/// How to connect and when to give up.
#[derive(Debug, Clone)]
pub struct ConnectPolicy {
    /// Handshake options (token, limits, connect timeout).
    pub options: ConnectOptions,
    /// Deadline of one request.
    pub request_timeout: Duration,
    /// How long a failed worker is avoided.
    pub retry_after: Duration,
    /// Which transports may be used.
    pub transport: TransportChoice,
    /// This host's boot id (`None`: unknown, shared memory is never used).
    pub host: Option<String>,
    /// Bytes and requests per transport.
    pub stats: Arc<TransportStats>,
    /// This process's RDMA device, opened on first use.
    pub rdma: Arc<RdmaDevice>,
}

/// The RDMA device a client reads through: opened when a worker first offers RDMA; if that
/// fails, one log line says why and RDMA is not tried again.
#[derive(Debug, Default)]
pub struct RdmaDevice {
    settings: ClientSettings,
    device: std::sync::OnceLock<Result<Arc<ClientDevice>, String>>,
}

impl RdmaDevice {
    /// A device to open with `settings`.
    pub fn new(settings: ClientSettings) -> Self {
        RdmaDevice {
            settings,
            device: std::sync::OnceLock::new(),
        }
    }

    /// The device, or why there is none.
    fn get(&self) -> Result<&Arc<ClientDevice>, &str> {
        self.device
            .get_or_init(|| match ClientDevice::shared(&self.settings) {
                Ok(device) => {
                    tracing::info!(device = device.name(), "reading through RDMA where workers offer it");
                    Ok(device)
                }
                Err(e) => {
                    tracing::info!("RDMA not used: {e}");
                    Err(e.to_string())
                }
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

/// A connection to a worker: TCP, shared memory, or TCP with an RDMA queue pair.
#[derive(Debug)]
pub(crate) enum Link {
    Tcp(TcpTransport),
    Shm(ShmTransport),
    Rdma(TcpTransport, RdmaLink),
}

/// How a link reads pages itself, out of the worker's regions.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Direct<'a> {
    Shm(&'a ShmTransport),
    Rdma(&'a TcpTransport, &'a RdmaLink),
}

impl Direct<'_> {
    /// The worker's handshake answer.
    pub(crate) fn hello(&self) -> &hoard_transport::wire::HelloReply {
        match self {
            Direct::Shm(t) => t.hello(),
            Direct::Rdma(t, _) => t.hello(),
        }
    }
}

impl Link {
    fn transport(&self) -> &dyn Transport {
        match self {
            Link::Tcp(t) | Link::Rdma(t, _) => t,
            Link::Shm(t) => t,
        }
    }

    /// The kind counted for the pages this link reads.
    pub(crate) fn kind(&self) -> TransportKind {
        match self {
            Link::Rdma(..) => TransportKind::Rdma,
            other => other.transport().kind(),
        }
    }

    /// Send a request with no payload over this link, counting it.
    pub(crate) async fn direct_call(&self, request: Request, policy: &ConnectPolicy) -> TransportResult<Response> {
        let reply = self.transport().call(request, Payload::default()).await?;
        policy.stats.request(self.kind(), reply.payload.len());
        Ok(reply.message)
    }

    /// The shared-memory connection, if this is one.
    pub(crate) fn shm(&self) -> Option<&ShmTransport> {
        match self {
            Link::Shm(t) => Some(t),
            Link::Tcp(_) | Link::Rdma(..) => None,
        }
    }

    /// How this link reads pages itself, if it does (an RDMA link whose queue pair failed does
    /// not).
    pub(crate) fn direct(&self) -> Option<Direct<'_>> {
        match self {
            Link::Shm(t) => Some(Direct::Shm(t)),
            Link::Rdma(t, r) if !r.is_failed() => Some(Direct::Rdma(t, r)),
            Link::Rdma(..) | Link::Tcp(_) => None,
        }
    }
}

/// What a client moved over each transport: bytes of file data received, and requests sent.
/// Page copies out of a worker's shared memory count as `shm` bytes, pages read with RDMA READs
/// as `rdma` bytes; those done from cached locations send no request at all
/// (`shm_cached_copies`, `rdma_cached_reads`).
#[derive(Debug, Default)]
pub struct TransportStats {
    tcp_bytes: AtomicU64,
    tcp_requests: AtomicU64,
    shm_bytes: AtomicU64,
    shm_requests: AtomicU64,
    shm_cached_copies: AtomicU64,
    rdma_bytes: AtomicU64,
    rdma_requests: AtomicU64,
    rdma_cached_reads: AtomicU64,
}

/// A snapshot of [`TransportStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportCounts {
    /// Bytes received over TCP (payloads of replies).
    pub tcp_bytes: u64,
    /// Requests sent over TCP.
    pub tcp_requests: u64,
    /// Bytes copied out of workers' shared memory, and payloads received over their sockets.
    pub shm_bytes: u64,
    /// Requests sent over shared-memory sockets.
    pub shm_requests: u64,
    /// Shared-memory reads served from cached page locations, with no request.
    pub shm_cached_copies: u64,
    /// Bytes read with one-sided RDMA READs, and payloads received over RDMA links' TCP side.
    pub rdma_bytes: u64,
    /// Requests sent over RDMA links' TCP side.
    pub rdma_requests: u64,
    /// RDMA reads done from cached page locations, with no request.
    pub rdma_cached_reads: u64,
}

impl TransportStats {
    /// Count one request over `kind` and the payload bytes of its reply.
    pub(crate) fn request(&self, kind: TransportKind, bytes: u64) {
        let (requests, total) = match kind {
            TransportKind::Shm => (&self.shm_requests, &self.shm_bytes),
            TransportKind::Tcp => (&self.tcp_requests, &self.tcp_bytes),
            TransportKind::Rdma => (&self.rdma_requests, &self.rdma_bytes),
        };
        requests.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(bytes, Ordering::Relaxed);
        ::metrics::counter!("client_requests", "transport" => kind.as_str()).increment(1);
        ::metrics::counter!("client_bytes_read", "transport" => kind.as_str()).increment(bytes);
    }

    /// Count bytes read out of a worker's regions (copied from shared memory, or read with
    /// RDMA); `cached` when no request was needed.
    pub(crate) fn copied(&self, kind: TransportKind, bytes: u64, cached: bool) {
        let (total, reads) = match kind {
            TransportKind::Rdma => (&self.rdma_bytes, &self.rdma_cached_reads),
            _ => (&self.shm_bytes, &self.shm_cached_copies),
        };
        total.fetch_add(bytes, Ordering::Relaxed);
        if cached {
            reads.fetch_add(1, Ordering::Relaxed);
        }
        ::metrics::counter!("client_bytes_read", "transport" => kind.as_str()).increment(bytes);
    }

    /// The counts now.
    pub fn snapshot(&self) -> TransportCounts {
        TransportCounts {
            tcp_bytes: self.tcp_bytes.load(Ordering::Relaxed),
            tcp_requests: self.tcp_requests.load(Ordering::Relaxed),
            shm_bytes: self.shm_bytes.load(Ordering::Relaxed),
            shm_requests: self.shm_requests.load(Ordering::Relaxed),
            shm_cached_copies: self.shm_cached_copies.load(Ordering::Relaxed),
            rdma_bytes: self.rdma_bytes.load(Ordering::Relaxed),
            rdma_requests: self.rdma_requests.load(Ordering::Relaxed),
            rdma_cached_reads: self.rdma_cached_reads.load(Ordering::Relaxed),
        }
    }
}

/// Page locations of one worker instance, by file version and page index. Bounded: when full it
/// starts over (hot pages come back with the next `Locate`). A location that went stale is
/// caught by the generation check of the copy and dropped.
#[derive(Debug, Default)]
pub(crate) struct LocationCache {
    instance: u64,
    files: HashMap<FileKey, HashMap<u64, PageLocation>>,
    entries: usize,
    capacity: usize,
}

impl LocationCache {
    pub(crate) fn new(capacity: usize) -> Self {
        LocationCache {
            capacity,
            ..LocationCache::default()
        }
    }

    /// The locations of pages `first..=last` of `file` in worker instance `instance`, if all
    /// are known.
    pub(crate) fn get(&self, instance: u64, file: &FileKey, first: u64, last: u64) -> Option<Vec<PageLocation>> {
        if instance != self.instance {
            return None;
        }
        let pages = self.files.get(file)?;
        (first..=last).map(|i| pages.get(&i).copied()).collect()
    }

    /// Remember where pages of `file` are in worker instance `instance`.
    pub(crate) fn insert(&mut self, instance: u64, file: &FileKey, located: &[PageLocation]) {
        if instance != self.instance || self.entries >= self.capacity {
            self.files.clear();
            self.entries = 0;
            self.instance = instance;
        }
        if self.capacity == 0 {
            return;
        }
        let pages = match self.files.get_mut(file) {
            Some(pages) => pages,
            None => self.files.entry(file.clone()).or_default(),
        };
        for at in located {
            if pages.insert(at.index, *at).is_none() {
                self.entries += 1;
            }
        }
    }

    /// Forget a page whose copy found it gone.
    pub(crate) fn forget(&mut self, file: &FileKey, index: u64) {
        if let Some(pages) = self.files.get_mut(file)
            && pages.remove(&index).is_some()
        {
            self.entries -= 1;
        }
    }
}

impl WorkerHandle {
    /// A handle with `connections` connection slots, remembering at most `locations` page
    /// locations.
    pub fn new(entry: WorkerEntry, connections: usize, locations: usize) -> Self {
        WorkerHandle {
            entry,
            connections: (0..connections.max(1)).map(|_| tokio::sync::Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            avoid_until: Mutex::new(None),
            shm_socket: Mutex::new(None),
            mapped: Mutex::new(None),
            locations: Mutex::new(LocationCache::new(locations)),
            rdma_off_until: Mutex::new(None),
        }
    }

    /// Whether the worker failed recently and should be skipped.
    pub fn is_avoided(&self) -> bool {
        self.avoid_until.lock().is_some_and(|t| Instant::now() < t)
    }

    /// Mark the worker as failed for `for_how_long`.
    pub fn avoid(&self, for_how_long: Duration) {
        *self.avoid_until.lock() = Some(Instant::now() + for_how_long);
    }

    /// The connection in pool slot `slot` (opened when missing or closed), and whether it was
    /// opened just now.
    async fn connection(&self, policy: &ConnectPolicy, slot: usize) -> TransportResult<(Arc<Link>, bool)> {
        let mut guard = self.connections[slot].lock().await;
        if let Some(conn) = guard
            .as_ref()
            .filter(|c| !c.transport().is_closed() && !self.rdma_again(c, policy))
        {
            return Ok((conn.clone(), false));
        }
        let conn = Arc::new(self.open(policy).await?);
        *guard = Some(conn.clone());
        Ok((conn, true))
    }

    /// Whether `link` is TCP only because RDMA with this worker failed a while ago, and may be
    /// tried again now (the link is then reopened; a new failure starts a new wait).
    fn rdma_again(&self, link: &Link, policy: &ConnectPolicy) -> bool {
        let Link::Tcp(tcp) = link else { return false };
        tcp.hello().rdma
            && matches!(policy.transport, TransportChoice::Auto | TransportChoice::Rdma)
            && self.rdma_off_until.lock().is_some_and(|t| Instant::now() >= t)
            && policy.rdma.get().is_ok()
    }

    /// The next pooled connection, if it is (or opens as) one that reads pages itself (shared
    /// memory, or RDMA).
    pub(crate) async fn direct_link(&self, policy: &ConnectPolicy) -> TransportResult<Option<Arc<Link>>> {
        if policy.transport == TransportChoice::Tcp {
            return Ok(None);
        }
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let (conn, _) = self.connection(policy, slot).await?;
        Ok(conn.direct().is_some().then_some(conn))
    }

    /// After an RDMA read failed: read from this worker over TCP for a while (the pooled links
    /// are reopened, without RDMA, as they are next used).
    pub(crate) fn rdma_failed(&self, policy: &ConnectPolicy, e: &impl std::fmt::Display) {
        tracing::warn!(worker = %self.entry.id, "RDMA read failed, reading over TCP from this worker: {e}");
        *self.rdma_off_until.lock() = Some(Instant::now() + policy.retry_after);
        for slot in &self.connections {
            if let Ok(mut guard) = slot.try_lock()
                && guard.as_ref().is_some_and(|c| matches!(**c, Link::Rdma(..)))
            {
                *guard = None;
            }
        }
    }

    /// A new connection as the policy allows: through the worker's shared-memory socket when
    /// one is known (learning it from a TCP handshake first), else TCP.
    async fn open(&self, policy: &ConnectPolicy) -> TransportResult<Link> {
        let options = policy.options.clone();
        if policy.transport == TransportChoice::Tcp {
            return Ok(Link::Tcp(TcpTransport::connect(self.entry.addr, options).await?));
        }
        if policy.transport == TransportChoice::Rdma {
            let tcp = TcpTransport::connect(self.entry.addr, options).await?;
            return self.with_rdma(policy, tcp, true).await;
        }
        // A socket learnt earlier is tried first; if it does not answer (the worker restarted and
        // is still starting, or no longer serves shared memory), the TCP handshake, which only
        // completes once the worker serves, says again where it is.
        let remembered = self.shm_socket.lock().clone();
        if let Some(socket) = remembered {
            let known = self.mapped.lock().clone();
            match ShmTransport::connect(&socket, options.clone(), known).await {
                Ok(shm) => {
                    *self.mapped.lock() = Some(shm.regions().clone());
                    return Ok(Link::Shm(shm));
                }
                Err(e) => {
                    tracing::debug!(worker = %self.entry.id, "shared-memory socket did not answer, asking over TCP: {e}");
                    *self.shm_socket.lock() = None;
                }
            }
        }
        let tcp = TcpTransport::connect(self.entry.addr, options.clone()).await?;
        let offered = tcp
            .shm_offer()
            .filter(|o| policy.host.as_deref() == Some(o.host.as_str()));
        let (socket, tcp) = match offered {
            Some(offer) => (PathBuf::from(&offer.socket), tcp),
            None if policy.transport == TransportChoice::Shm => {
                return Err(TransportError::Refused {
                    status: Status::Unsupported,
                    message: format!(
                        "worker {} offers no shared memory to this host (HOARD_TRANSPORT=shm)",
                        self.entry.id
                    ),
                });
            }
            None => return self.with_rdma(policy, tcp, false).await,
        };
        let known = self.mapped.lock().clone();
        match ShmTransport::connect(&socket, options.clone(), known).await {
            Ok(shm) => {
                *self.shm_socket.lock() = Some(socket);
                *self.mapped.lock() = Some(shm.regions().clone());
                Ok(Link::Shm(shm))
            }
            Err(e) if policy.transport == TransportChoice::Shm => Err(e),
            Err(e) => {
                tracing::warn!(
                    worker = %self.entry.id,
                    socket = %socket.display(),
                    "shared memory offered but not reachable, using TCP: {e}"
                );
                self.with_rdma(policy, tcp, false).await
            }
        }
    }

    /// `tcp`, with a queue pair set up on it when the worker offers RDMA and this process has a
    /// device (`required`: or else fail).
    async fn with_rdma(&self, policy: &ConnectPolicy, tcp: TcpTransport, required: bool) -> TransportResult<Link> {
        let refuse = |message: String| TransportError::Refused {
            status: Status::Unsupported,
            message,
        };
        if !tcp.hello().rdma {
            if required {
                return Err(refuse(format!(
                    "worker {} offers no RDMA (HOARD_TRANSPORT=rdma)",
                    self.entry.id
                )));
            }
            return Ok(Link::Tcp(tcp));
        }
        if !required && self.rdma_off_until.lock().is_some_and(|t| Instant::now() < t) {
            return Ok(Link::Tcp(tcp));
        }
        let device = match policy.rdma.get() {
            Ok(device) => device.clone(),
            Err(why) if required => return Err(refuse(format!("{why} (HOARD_TRANSPORT=rdma)"))),
            Err(_) => return Ok(Link::Tcp(tcp)),
        };
        match RdmaLink::connect(&tcp, &device).await {
            Ok(link) => {
                *self.rdma_off_until.lock() = None;
                Ok(Link::Rdma(tcp, link))
            }
            Err(e) if required => Err(refuse(format!("worker {}: {e} (HOARD_TRANSPORT=rdma)", self.entry.id))),
            Err(e) => {
                tracing::warn!(worker = %self.entry.id, "RDMA offered but no queue pair could be set up, using TCP: {e}");
                *self.rdma_off_until.lock() = Some(Instant::now() + policy.retry_after);
                Ok(Link::Tcp(tcp))
            }
        }
    }

    /// Send one request with the policy's deadline. On a transport failure or timeout the worker
    /// is avoided for a while.
    ///
    /// # Errors
    /// [`TransportError`] when the worker cannot be reached or does not answer in time.
    pub async fn call(&self, policy: &ConnectPolicy, request: Request) -> TransportResult<Reply> {
        let (message, payload) = self.call_into(policy, request, BytesMut::new()).await?;
        Ok(Reply {
            message,
            payload: Payload::single(payload.freeze()),
        })
    }

    /// Send one request with a payload, without the reconnect-and-ask-again of
    /// [`WorkerHandle::call`] (for requests that must not run twice), with its own deadline.
    ///
    /// # Errors
    /// As [`WorkerHandle::call`].
    pub async fn call_once(
        &self,
        policy: &ConnectPolicy,
        request: Request,
        payload: Payload,
        timeout: Duration,
    ) -> TransportResult<Reply> {
        let attempt = async {
            let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
            let (conn, _) = self.connection(policy, slot).await?;
            let reply = conn.transport().call(request, payload).await?;
            policy.stats.request(conn.transport().kind(), reply.payload.len());
            Ok(reply)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout(timeout)),
        }
    }

    /// As [`WorkerHandle::call`], with the reply's payload appended to `recv` (read straight
    /// into its spare capacity when it fits).
    ///
    /// # Errors
    /// As [`WorkerHandle::call`].
    pub async fn call_into(
        &self,
        policy: &ConnectPolicy,
        request: Request,
        recv: BytesMut,
    ) -> TransportResult<(Response, BytesMut)> {
        let attempt = async {
            let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
            let (conn, fresh) = self.connection(policy, slot).await?;
            let capacity = recv.capacity();
            let (conn, reply) = match conn.transport().call_into(request.clone(), recv).await {
                // A pooled connection the worker closed while idle (it restarted): no reader
                // watches idle connections, so the first call finds out. Reads are idempotent:
                // ask once more on a new connection.
                Err(TransportError::Closed | TransportError::Io(_)) if !fresh => {
                    let (conn, _) = self.connection(policy, slot).await?;
                    let reply = conn
                        .transport()
                        .call_into(request, BytesMut::with_capacity(capacity))
                        .await;
                    (conn, reply)
                }
                other => (conn, other),
            };
            let reply = reply?;
            policy.stats.request(conn.transport().kind(), reply.1.len() as u64);
            Ok(reply)
        };
        let result = match tokio::time::timeout(policy.request_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout(policy.request_timeout)),
        };
        if let Err(e) = &result {
            tracing::warn!(worker = %self.entry.id, "worker failed, trying the next one: {e}");
            self.avoid(policy.retry_after);
        }
        result
    }
}
