//! The cluster's workers as the client sees them: connections, and which ones to avoid.
//!
//! Membership is the static list of the cluster config. Each worker has a small pool of
//! connections opened on first use; a worker that fails a request is avoided for
//! `worker_retry_after`, then tried again.
//!
//! A connection is TCP, or shared memory when the worker is on this host and offers it (its TCP
//! handshake says where its Unix socket is, and on which host it runs): the first connection
//! to such a worker is TCP, and every one after it (the first included, re-opened at once)
//! goes through the socket. `client.transport` (or `HOARD_TRANSPORT`) forces one or the other.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hoard_transport::cluster::{TransportChoice, WorkerEntry};
use hoard_transport::region::Location;
use hoard_transport::shm::{MappedRegions, ShmTransport};
use hoard_transport::tcp::{ConnectOptions, TcpTransport};
use hoard_transport::wire::{FileKey, Payload, Reply, Request, Response, Status};
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
}

/// A connection to a worker: TCP, or shared memory.
#[derive(Debug)]
pub(crate) enum Link {
    Tcp(TcpTransport),
    Shm(ShmTransport),
}

impl Link {
    fn transport(&self) -> &dyn Transport {
        match self {
            Link::Tcp(t) => t,
            Link::Shm(t) => t,
        }
    }

    /// Send a request with no payload over this shared-memory connection, counting it.
    pub(crate) async fn shm_call(&self, request: Request, policy: &ConnectPolicy) -> TransportResult<Response> {
        let reply = self.transport().call(request, Payload::default()).await?;
        policy.stats.request(self.transport().kind(), reply.payload.len());
        Ok(reply.message)
    }

    /// The shared-memory connection, if this is one.
    pub(crate) fn shm(&self) -> Option<&ShmTransport> {
        match self {
            Link::Shm(t) => Some(t),
            Link::Tcp(_) => None,
        }
    }
}

/// What a client moved over each transport: bytes of file data received, and requests sent.
/// Page copies out of a worker's shared memory count as `shm` bytes; those done from cached
/// locations send no request at all (`shm_cached_copies`).
#[derive(Debug, Default)]
pub struct TransportStats {
    tcp_bytes: AtomicU64,
    tcp_requests: AtomicU64,
    shm_bytes: AtomicU64,
    shm_requests: AtomicU64,
    shm_cached_copies: AtomicU64,
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
    /// Reads served from cached page locations, with no request.
    pub shm_cached_copies: u64,
}

impl TransportStats {
    /// Count one request over `kind` and the payload bytes of its reply.
    pub(crate) fn request(&self, kind: TransportKind, bytes: u64) {
        let (requests, total) = match kind {
            TransportKind::Shm => (&self.shm_requests, &self.shm_bytes),
            TransportKind::Tcp => (&self.tcp_requests, &self.tcp_bytes),
        };
        requests.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(bytes, Ordering::Relaxed);
        ::metrics::counter!("client_requests", "transport" => kind.as_str()).increment(1);
        ::metrics::counter!("client_bytes_read", "transport" => kind.as_str()).increment(bytes);
    }

    /// Count bytes copied out of shared memory; `cached` when no request was needed.
    pub(crate) fn copied(&self, bytes: u64, cached: bool) {
        self.shm_bytes.fetch_add(bytes, Ordering::Relaxed);
        if cached {
            self.shm_cached_copies.fetch_add(1, Ordering::Relaxed);
        }
        ::metrics::counter!("client_bytes_read", "transport" => "shm").increment(bytes);
    }

    /// The counts now.
    pub fn snapshot(&self) -> TransportCounts {
        TransportCounts {
            tcp_bytes: self.tcp_bytes.load(Ordering::Relaxed),
            tcp_requests: self.tcp_requests.load(Ordering::Relaxed),
            shm_bytes: self.shm_bytes.load(Ordering::Relaxed),
            shm_requests: self.shm_requests.load(Ordering::Relaxed),
            shm_cached_copies: self.shm_cached_copies.load(Ordering::Relaxed),
        }
    }
}

/// Page locations of one worker instance, by file version and page index. Bounded: when full it
/// starts over (hot pages come back with the next `Locate`). A location that went stale is
/// caught by the generation check of the copy and dropped.
#[derive(Debug, Default)]
pub(crate) struct LocationCache {
    instance: u64,
    files: HashMap<FileKey, HashMap<u64, Location>>,
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
    pub(crate) fn get(&self, instance: u64, file: &FileKey, first: u64, last: u64) -> Option<Vec<(u64, Location)>> {
        if instance != self.instance {
            return None;
        }
        let pages = self.files.get(file)?;
        (first..=last).map(|i| pages.get(&i).map(|at| (i, *at))).collect()
    }

    /// Remember where pages of `file` are in worker instance `instance`.
    pub(crate) fn insert(&mut self, instance: u64, file: &FileKey, located: impl IntoIterator<Item = (u64, Location)>) {
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
        for (index, at) in located {
            if pages.insert(index, at).is_none() {
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
        if let Some(conn) = guard.as_ref().filter(|c| !c.transport().is_closed()) {
            return Ok((conn.clone(), false));
        }
        let conn = Arc::new(self.open(policy).await?);
        *guard = Some(conn.clone());
        Ok((conn, true))
    }

    /// The next pooled connection, if it is (or opens as) shared memory.
    pub(crate) async fn shm_link(&self, policy: &ConnectPolicy) -> TransportResult<Option<Arc<Link>>> {
        if policy.transport == TransportChoice::Tcp {
            return Ok(None);
        }
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let (conn, _) = self.connection(policy, slot).await?;
        Ok(conn.shm().is_some().then_some(conn))
    }

    /// A new connection as the policy allows: through the worker's shared-memory socket when
    /// one is known (learning it from a TCP handshake first), else TCP.
    async fn open(&self, policy: &ConnectPolicy) -> TransportResult<Link> {
        let options = policy.options.clone();
        if policy.transport == TransportChoice::Tcp {
            return Ok(Link::Tcp(TcpTransport::connect(self.entry.addr, options).await?));
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
            None => return Ok(Link::Tcp(tcp)),
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
