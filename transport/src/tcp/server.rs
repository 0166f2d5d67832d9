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
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info_span};

use super::{constant_time_eq, write_frame};
use crate::error::{TransportError, TransportResult};
use crate::wire::{
    FrameLimits, HelloReply, Outgoing, PROTOCOL_VERSION, RawFrame, Reply, Request, Response, Status, decode_request,
    read_frame,
};

/// Serves the requests of one worker. Implemented by the worker crate.
pub trait Handler: Send + Sync + 'static {
    /// Answer one request. Errors are answered as [`Response::Error`] replies, not panics.
    fn handle(&self, request: Request, payload: Bytes) -> impl Future<Output = Reply> + Send;
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
}

type SharedWriter = Arc<Mutex<BufWriter<OwnedWriteHalf>>>;

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
    let mut reader = BufReader::with_capacity(64 << 10, read);
    let writer: SharedWriter = Arc::new(Mutex::new(BufWriter::with_capacity(256 << 10, write)));
    match tokio::time::timeout(config.handshake_timeout, handshake(&mut reader, &writer, &config)).await {
        Ok(Ok(())) => {}
        // A port probe (health check) connects and leaves: nothing to worry about.
        Ok(Err(TransportError::Closed)) => return debug!("connection closed before the handshake"),
        Ok(Err(e)) => {
            error!(%peer, "closing connection: handshake failed: {e}");
            return;
        }
        Err(_) => {
            error!(%peer, "closing connection: no handshake within {:?}", config.handshake_timeout);
            return;
        }
    }
    let inflight = Arc::new(Semaphore::new(config.max_inflight_per_connection.max(1)));
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
        let permit = inflight
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (handler, writer, id) = (handler.clone(), writer.clone(), frame.header.request_id);
        let mut answer = Box::pin(async move {
            let reply = handler.handle(request, frame.payload).await;
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

async fn handshake(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: &SharedWriter,
    config: &ServerConfig,
) -> TransportResult<()> {
    let frame: RawFrame = match read_frame(reader, &FrameLimits::HANDSHAKE).await {
        Ok(Some(frame)) => frame,
        Ok(None) => return Err(TransportError::Closed),
        Err(e @ TransportError::VersionMismatch { .. }) => {
            let reply = Reply::error(Status::VersionMismatch, e.to_string());
            let _ = send_reply(writer, 0, &reply).await;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let refusal = match decode_request(&frame)? {
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
    if let Some((status, message)) = refusal {
        send_reply(writer, frame.header.request_id, &Reply::error(status, message.clone())).await?;
        return Err(TransportError::Refused { status, message });
    }
    let hello = HelloReply {
        protocol_version: PROTOCOL_VERSION,
        worker_id: config.worker_id.clone(),
        page_size: config.page_size,
    };
    send_reply(writer, frame.header.request_id, &Reply::message(Response::Hello(hello))).await
}

async fn send_reply(writer: &SharedWriter, request_id: u64, reply: &Reply) -> TransportResult<()> {
    let mut writer = writer.lock().await;
    write_frame(
        &mut *writer,
        request_id,
        Outgoing::Response(&reply.message),
        &reply.payload,
    )
    .await
}
