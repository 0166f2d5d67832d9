//! Worker side of TCP: accept, handshake, then run requests concurrently through a [`Handler`].
//!
//! A connection that sends a bad frame (wrong magic or version, over the size limit, failing
//! validation) is closed with a logged error; every other connection carries on.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info_span};

use super::{BoxRead, BoxWrite, constant_time_eq, write_frame};
use crate::TransportKind;
use crate::error::{TransportError, TransportResult};
use crate::rdma::{RdmaServer, ServerQp};
use crate::wire::{
    FrameLimits, HelloReply, Outgoing, PROTOCOL_VERSION, RawFrame, Reply, Request, Response, ShmOffer, Status,
    decode_request, read_frame,
};

/// Serves the requests of one worker. Implemented by the worker crate.
pub trait Handler: Send + Sync + 'static {
    /// Answer one request that came over a connection of kind `via` (`Rdma` for a TCP connection
    /// that set up a queue pair). Errors are answered as [`Response::Error`] replies, not panics.
    fn handle(&self, request: Request, payload: Bytes, via: TransportKind) -> impl Future<Output = Reply> + Send;
}

/// Settings of [`serve`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The cluster's shared secret, which every handshake must present.
    pub token: String,
    /// This worker's id, told to clients in the handshake.
    pub worker_id: String,
    /// This worker's page size, told to clients in the handshake.
    pub page_size: u64,
    /// Limits on frames received.
    pub limits: FrameLimits,
    /// Most requests in flight on one connection; further frames wait to be read.
    pub max_inflight_per_connection: usize,
    /// A connection that sends no handshake within this time is closed.
    pub handshake_timeout: Duration,
    /// This worker process's instance, told to clients in the handshake (see
    /// [`HelloReply::instance`]).
    pub instance: u64,
    /// The shared-memory offer told to TCP clients, when the worker serves shared memory.
    pub shm: Option<ShmOffer>,
    /// The worker's RDMA devices and registered regions, when it serves RDMA (offered to TCP
    /// clients, which set up queue pairs with [`Request::RdmaConnect`]).
    pub rdma: Option<Arc<RdmaServer>>,
}

impl ServerConfig {
    /// The handshake answer of this worker: over TCP with its shared-memory and RDMA offers, over
    /// the shared-memory socket with the regions whose descriptors go with it.
    pub(crate) fn hello(&self, over_tcp: bool, regions: Vec<crate::wire::RegionInfo>) -> HelloReply {
        HelloReply {
            protocol_version: PROTOCOL_VERSION,
            worker_id: self.worker_id.clone(),
            page_size: self.page_size,
            instance: self.instance,
            shm: if over_tcp { self.shm.clone() } else { None },
            rdma: over_tcp && self.rdma.is_some(),
            regions,
        }
    }
}

pub(crate) type SharedWriter = Arc<Mutex<BufWriter<BoxWrite>>>;

/// Accept connections on `listener` until `shutdown` completes, then stop accepting and close
/// the connections.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let config = Arc::new(config);
    let cancel = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    error!("failed to accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (handler, config, cancel) = (handler.clone(), config.clone(), cancel.child_token());
        let span = info_span!("conn", %peer);
        tokio::spawn(
            async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = serve_connection(stream, peer, handler, config) => {}
                }
            }
            .instrument(span),
        );
    }
    cancel.cancel();
}

async fn serve_connection<H: Handler>(stream: TcpStream, peer: SocketAddr, handler: Arc<H>, config: Arc<ServerConfig>) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!("set TCP_NODELAY: {e}");
    }
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 << 10, Box::new(read) as BoxRead);
    let writer: SharedWriter = Arc::new(Mutex::new(BufWriter::with_capacity(
        256 << 10,
        Box::new(write) as BoxWrite,
    )));
    let handshake = async {
        let frame = match read_hello(&mut reader).await {
            Ok(frame) => frame,
            Err(e) => {
                if let Some(reply) = early_refusal(&e) {
                    let _ = send_reply(&writer, 0, &reply).await;
                }
                return Err(e);
            }
        };
        let hello = config.hello(true, Vec::new());
        let id = frame.header.request_id;
        if let Some((reply, e)) = refusal(&frame, &config)? {
            send_reply(&writer, id, &reply).await?;
            return Err(e);
        }
        send_reply(&writer, id, &Reply::message(Response::Hello(hello))).await
    };
    if handshake_done(
        tokio::time::timeout(config.handshake_timeout, handshake).await,
        &peer.to_string(),
        &config,
    ) {
        run_requests(reader, writer, &peer.to_string(), handler, &config, TransportKind::Tcp).await;
    }
}

/// Whether a handshake (with its timeout) succeeded; logs why not.
pub(crate) fn handshake_done(
    outcome: Result<TransportResult<()>, tokio::time::error::Elapsed>,
    peer: &str,
    config: &ServerConfig,
) -> bool {
    match outcome {
        Ok(Ok(())) => true,
        // A port probe (health check) connects and leaves: nothing to worry about.
        Ok(Err(TransportError::Closed)) => {
            debug!("connection closed before the handshake");
            false
        }
        Ok(Err(e)) => {
            error!(%peer, "closing connection: handshake failed: {e}");
            false
        }
        Err(_) => {
            error!(%peer, "closing connection: no handshake within {:?}", config.handshake_timeout);
            false
        }
    }
}

/// Read and answer requests until the client leaves or sends a bad frame.
pub(crate) async fn run_requests<H: Handler>(
    mut reader: BufReader<BoxRead>,
    writer: SharedWriter,
    peer: &str,
    handler: Arc<H>,
    config: &ServerConfig,
    mut via: TransportKind,
) {
    let inflight = Arc::new(Semaphore::new(config.max_inflight_per_connection.max(1)));
    // The worker's end of this connection's queue pair, if the client set one up: it goes with
    // the connection.
    let mut _queue_pair: Option<ServerQp> = None;
    loop {
        let frame = match read_frame(&mut reader, &config.limits).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return debug!("client closed the connection"),
            Err(TransportError::Closed) => return debug!("client closed the connection mid-frame"),
            Err(e) => return error!(%peer, "closing connection: bad frame: {e}"),
        };
        let request = match decode_request(&frame) {
            Ok(r) => r,
            Err(e) => return error!(%peer, "closing connection: bad frame: {e}"),
        };
        if let Request::RdmaConnect(client) = request {
            let id = frame.header.request_id;
            let reply = match (&config.rdma, via) {
                (Some(rdma), TransportKind::Tcp | TransportKind::Rdma) => match accept(rdma, client).await {
                    Ok((connected, qp)) => {
                        _queue_pair = Some(qp);
                        via = TransportKind::Rdma;
                        Reply::message(Response::RdmaConnected(connected))
                    }
                    Err(e) => {
                        error!(%peer, "RDMA queue pair not set up: {e}");
                        Reply::error(Status::Internal, format!("RDMA queue pair not set up: {e}"))
                    }
                },
                _ => Reply::error(
                    Status::Unsupported,
                    "this worker does not serve RDMA on this connection",
                ),
            };
            if let Err(e) = send_reply(&writer, id, &reply).await {
                return debug!("failed to send a reply: {e}");
            }
            continue;
        }
        let permit = inflight
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (handler, writer, id) = (handler.clone(), writer.clone(), frame.header.request_id);
        let mut answer = Box::pin(async move {
            let reply = handler.handle(request, frame.payload, via).await;
            match send_reply(&writer, id, &reply).await {
                Ok(()) => {}
                // The reply itself could not be framed (a bug): tell the client instead of
                // leaving it to time out.
                Err(TransportError::Encode(e)) => {
                    error!("failed to encode a reply: {e}");
                    let _ = send_reply(
                        &writer,
                        id,
                        &Reply::error(Status::Internal, format!("encode reply: {e}")),
                    )
                    .await;
                }
                Err(e) => debug!("failed to send a reply: {e}"),
            }
            drop(permit);
        });
        // A request that can be answered at once (a cache hit) is answered by this task; only
        // one that has to wait (a fill, an under-store call) becomes a task of its own. That
        // saves a task hand-off on the hot path and keeps replies in order when they can be.
        let answered = std::future::poll_fn(|cx| std::task::Poll::Ready(answer.as_mut().poll(cx).is_ready())).await;
        if !answered {
            tokio::spawn(answer);
        }
    }
}

/// Set up the worker's end of a client's queue pair, off the runtime's threads (moving a queue
/// pair to RTR may wait on the kernel's neighbour resolution).
async fn accept(
    rdma: &Arc<RdmaServer>,
    client: crate::wire::RdmaEndpoint,
) -> Result<(crate::wire::RdmaConnected, ServerQp), crate::rdma::RdmaError> {
    let rdma = rdma.clone();
    tokio::task::spawn_blocking(move || rdma.accept(&client))
        .await
        .unwrap_or_else(|e| Err(crate::rdma::RdmaError::Protocol(format!("the set-up task failed: {e}"))))
}

/// The handshake's first frame.
pub(crate) async fn read_hello(reader: &mut BufReader<BoxRead>) -> TransportResult<RawFrame> {
    read_frame(reader, &FrameLimits::HANDSHAKE)
        .await?
        .ok_or(TransportError::Closed)
}

/// What to tell a client whose first frame failed to read with `e`, before closing: a client of
/// another protocol version is told so.
pub(crate) fn early_refusal(e: &TransportError) -> Option<Reply> {
    match e {
        TransportError::VersionMismatch { .. } => Some(Reply::error(Status::VersionMismatch, e.to_string())),
        _ => None,
    }
}

/// Why the handshake frame is refused, if it is: the reply to send before closing, and the
/// error to log.
pub(crate) fn refusal(frame: &RawFrame, config: &ServerConfig) -> TransportResult<Option<(Reply, TransportError)>> {
    let refusal = match decode_request(frame)? {
        Request::Hello(h) if h.protocol_version != PROTOCOL_VERSION => Some((
            Status::VersionMismatch,
            format!(
                "protocol version {} not supported (worker speaks {PROTOCOL_VERSION})",
                h.protocol_version
            ),
        )),
        Request::Hello(h) if !constant_time_eq(h.token.as_bytes(), config.token.as_bytes()) => Some((
            Status::AuthFailed,
            format!("wrong cluster token from client `{}`", h.client_name),
        )),
        Request::Hello(_) => None,
        other => Some((
            Status::HandshakeRequired,
            format!("expected a handshake, got {:?}", other.kind()),
        )),
    };
    Ok(refusal.map(|(status, message)| {
        (
            Reply::error(status, message.clone()),
            TransportError::Refused { status, message },
        )
    }))
}

pub(crate) async fn send_reply(writer: &SharedWriter, request_id: u64, reply: &Reply) -> TransportResult<()> {
    let mut writer = writer.lock().await;
    write_frame(
        &mut *writer,
        request_id,
        Outgoing::Response(&reply.message),
        &reply.payload,
    )
    .await
}
