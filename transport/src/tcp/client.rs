//! Client side of a TCP connection: handshake, request ids, a reader task that routes replies.
//! The parts that do not depend on the stream ([`Framed`]) serve the shared-memory transport's
//! Unix socket too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, BufReader, BufWriter};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::oneshot;

use super::write_frame;
use crate::error::{TransportError, TransportResult};
use crate::wire::{
    FrameLimits, Hello, HelloReply, Outgoing, PROTOCOL_VERSION, Payload, RawFrame, Reply, Request, Response, ShmOffer,
    Status, decode_response, decode_response_message, read_frame, read_frame_head, read_payload_into,
};
use crate::{Transport, TransportKind};

/// How to open a [`TcpTransport`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The cluster's shared secret.
    pub token: String,
    /// A name for the worker's logs.
    pub client_name: String,
    /// Limits on frames received.
    pub limits: FrameLimits,
    /// Limit on connecting plus the handshake.
    pub connect_timeout: Duration,
}

impl ConnectOptions {
    /// Options with this token and defaults for the rest.
    pub fn new(token: impl Into<String>) -> Self {
        ConnectOptions {
            token: token.into(),
            client_name: format!("hoard-client-{}", std::process::id()),
            limits: FrameLimits::default(),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

/// A reply as the reader task hands it over: the message and the payload, in the buffer the
/// caller registered when it had one.
type Received = (Response, BytesMut);

/// A call waiting for its reply, and the buffer its payload should land in.
#[derive(Debug)]
struct PendingCall {
    tx: oneshot::Sender<TransportResult<Received>>,
    recv: BytesMut,
}

type Pending = Mutex<HashMap<u64, PendingCall>>;

/// The read half of a stream a [`Framed`] connection runs over.
pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a stream a [`Framed`] connection runs over.
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

struct Shared {
    writer: tokio::sync::Mutex<BufWriter<BoxWrite>>,
    pending: Pending,
    next_id: AtomicU64,
    closed: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("pending", &self.pending.lock().len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn fail_all(&self) {
        self.closed.store(true, Ordering::Release);
        for (_, call) in self.pending.lock().drain() {
            let _ = call.tx.send(Err(TransportError::Closed));
        }
    }
}

/// The part of a client connection that does not depend on the stream (TCP or a Unix socket):
/// request ids, calls waiting for replies, and the task that reads replies and routes them.
#[derive(Debug)]
pub(crate) struct Framed {
    shared: Arc<Shared>,
    hello: HelloReply,
}

/// The handshake's first frame.
pub(crate) fn hello_request(options: &ConnectOptions) -> Request {
    Request::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        token: options.token.clone(),
        client_name: options.client_name.clone(),
    })
}

/// The worker's answer to the handshake, or why it refused.
pub(crate) fn hello_reply(frame: &RawFrame) -> TransportResult<HelloReply> {
    match decode_response(frame)? {
        Response::Hello(h) => Ok(h),
        Response::Error(e) => Err(TransportError::Refused {
            status: Status::from_u16(e.status),
            message: e.message,
        }),
        other => Err(TransportError::Malformed {
            kind: frame.header.kind,
            reason: format!("expected a handshake reply, got {:?}", other.kind()),
        }),
    }
}

impl Framed {
    /// Start routing replies from `reader` (after the handshake, which `hello` answered).
    pub(crate) fn start(
        reader: BufReader<BoxRead>,
        writer: BufWriter<BoxWrite>,
        hello: HelloReply,
        limits: FrameLimits,
        peer: String,
    ) -> Framed {
        let shared = Arc::new(Shared {
            writer: tokio::sync::Mutex::new(writer),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(read_replies(reader, Arc::downgrade(&shared), limits, peer));
        Framed { shared, hello }
    }

    /// The worker's handshake reply.
    pub(crate) fn hello(&self) -> &HelloReply {
        &self.hello
    }

    /// Whether the connection is known to be dead.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Send a request with a payload and wait for its reply.
    pub(crate) async fn call(&self, request: Request, payload: Payload) -> TransportResult<Reply> {
        let (message, payload) = self.exchange(request, &payload, BytesMut::new()).await?;
        Ok(Reply {
            message,
            payload: Payload::single(payload.freeze()),
        })
    }

    /// Send a request and wait for its reply, whose payload is appended to `recv`.
    pub(crate) async fn exchange(
        &self,
        request: Request,
        payload: &Payload,
        recv: BytesMut,
    ) -> TransportResult<Received> {
        if self.is_closed() {
            return Err(TransportError::Closed);
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.shared.pending.lock().insert(id, PendingCall { tx, recv });
        let _guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        {
            let mut writer = self.shared.writer.lock().await;
            if let Err(e) = write_frame(&mut *writer, id, Outgoing::Request(&request), payload).await {
                drop(writer);
                self.shared.fail_all();
                return Err(e);
            }
        }
        rx.await.map_err(|_| TransportError::Closed)?
    }
}

/// One TCP connection to a worker, shared by many concurrent calls.
#[derive(Debug)]
pub struct TcpTransport {
    framed: Framed,
    peer: SocketAddr,
}

impl TcpTransport {
    /// Connect to a worker and perform the handshake.
    ///
    /// # Errors
    /// I/O errors, [`TransportError::Timeout`], and [`TransportError::Refused`] when the worker
    /// refuses the token or the protocol version.
    pub async fn connect(addr: impl ToSocketAddrs, options: ConnectOptions) -> TransportResult<TcpTransport> {
        let deadline = options.connect_timeout;
        tokio::time::timeout(deadline, Self::connect_inner(addr, options))
            .await
            .map_err(|_| TransportError::Timeout(deadline))?
    }

    async fn connect_inner(addr: impl ToSocketAddrs, options: ConnectOptions) -> TransportResult<TcpTransport> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr()?;
        let (read, write) = stream.into_split();
        let mut reader = BufReader::with_capacity(256 << 10, Box::new(read) as BoxRead);
        let mut writer = BufWriter::with_capacity(64 << 10, Box::new(write) as BoxWrite);
        let hello = hello_request(&options);
        write_frame(&mut writer, 0, Outgoing::Request(&hello), &Payload::default()).await?;
        let frame = read_frame(&mut reader, &options.limits)
            .await?
            .ok_or(TransportError::Closed)?;
        let hello = hello_reply(&frame)?;
        let framed = Framed::start(reader, writer, hello, options.limits, peer.to_string());
        Ok(TcpTransport { framed, peer })
    }

    /// The worker's id, from the handshake.
    pub fn worker_id(&self) -> &str {
        &self.framed.hello.worker_id
    }

    /// The worker's page size, from the handshake.
    pub fn page_size(&self) -> u64 {
        self.framed.hello.page_size
    }

    /// The worker's handshake answer.
    pub fn hello(&self) -> &HelloReply {
        &self.framed.hello
    }

    /// The worker's offer of shared memory, from the handshake (`None`: it serves none).
    pub fn shm_offer(&self) -> Option<&ShmOffer> {
        self.framed.hello.shm.as_ref()
    }

    /// The worker's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

/// Removes a call's pending entry if the call is dropped before its reply (a timeout).
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.pending.lock().remove(&self.id);
    }
}

#[async_trait]
impl Transport for TcpTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Tcp
    }

    async fn call(&self, request: Request, payload: Payload) -> TransportResult<Reply> {
        self.framed.call(request, payload).await
    }

    async fn call_into(&self, request: Request, recv: BytesMut) -> TransportResult<(Response, BytesMut)> {
        self.framed.exchange(request, &Payload::default(), recv).await
    }

    fn is_closed(&self) -> bool {
        self.framed.is_closed()
    }
}

/// Route every reply frame to its caller until the connection ends. A reply's payload is read
/// straight into the buffer its caller registered, so large reads cost no extra copy.
async fn read_replies(mut reader: BufReader<BoxRead>, shared: Weak<Shared>, limits: FrameLimits, peer: String) {
    let outcome = loop {
        let (header, message) = match read_frame_head(&mut reader, &limits).await {
            Ok(Some(head)) => head,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        let Some(shared) = shared.upgrade() else { return };
        let message = match decode_response_message(&header, &message) {
            Ok(m) => m,
            Err(e) => break Err(e),
        };
        // A call that timed out is gone: its reply's payload is read and dropped.
        let (tx, recv) = match shared.pending.lock().remove(&header.request_id) {
            Some(call) => (Some(call.tx), call.recv),
            None => (None, BytesMut::new()),
        };
        let payload = match read_payload_into(&mut reader, header.payload_len, recv).await {
            Ok(p) => p,
            Err(e) => break Err(e),
        };
        if let Some(tx) = tx {
            let _ = tx.send(Ok((message, payload)));
        }
    };
    if let Err(e) = outcome {
        tracing::warn!(%peer, "connection to worker failed: {e}");
    }
    if let Some(shared) = shared.upgrade() {
        shared.fail_all();
    }
}
