//! Client side of a TCP connection: handshake, request ids, a reader task that routes replies.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::{BufReader, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::oneshot;

use super::reader::{Pending, PendingCall, Received, ReplyReader};
use super::write_frame;
use crate::error::{TransportError, TransportResult};
use crate::wire::{
    FrameLimits, Hello, Outgoing, PROTOCOL_VERSION, Payload, Reply, Request, Response, Status, decode_response,
    read_frame,
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

#[derive(Debug)]
struct Shared {
    writer: tokio::sync::Mutex<BufWriter<OwnedWriteHalf>>,
    reader: tokio::sync::Mutex<ReplyReader>,
    pending: Pending,
    next_id: AtomicU64,
    closed: AtomicBool,
}

impl Shared {
    fn fail_all(&self) {
        self.closed.store(true, Ordering::Release);
        for (_, call) in self.pending.lock().drain() {
            let _ = call.tx.send(Err(TransportError::Closed));
        }
    }
}

/// One TCP connection to a worker, shared by many concurrent calls.
#[derive(Debug)]
pub struct TcpTransport {
    shared: Arc<Shared>,
    peer: SocketAddr,
    worker_id: String,
    page_size: u64,
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
        let mut reader = BufReader::with_capacity(256 << 10, read);
        let mut writer = BufWriter::with_capacity(64 << 10, write);
        let hello = Request::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            token: options.token.clone(),
            client_name: options.client_name.clone(),
        });
        write_frame(&mut writer, 0, Outgoing::Request(&hello), &Payload::default()).await?;
        let frame = read_frame(&mut reader, &options.limits)
            .await?
            .ok_or(TransportError::Closed)?;
        let (worker_id, page_size) = match decode_response(&frame)? {
            Response::Hello(h) => (h.worker_id, h.page_size),
            Response::Error(e) => {
                return Err(TransportError::Refused {
                    status: Status::from_u16(e.status),
                    message: e.message,
                });
            }
            other => {
                let reason = format!("expected a handshake reply, got {:?}", other.kind());
                return Err(TransportError::Malformed {
                    kind: frame.header.kind,
                    reason,
                });
            }
        };
        let shared = Arc::new(Shared {
            writer: tokio::sync::Mutex::new(writer),
            reader: tokio::sync::Mutex::new(ReplyReader::new(reader, options.limits)),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        });
        Ok(TcpTransport {
            shared,
            peer,
            worker_id,
            page_size,
        })
    }

    /// The worker's id, from the handshake.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The worker's page size, from the handshake.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// The worker's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

impl TcpTransport {
    /// Send a request and wait for its reply, whose payload is appended to `recv`.
    async fn exchange(&self, request: Request, payload: &Payload, recv: BytesMut) -> TransportResult<Received> {
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
        self.wait_reply(id, rx).await
    }

    /// Wait for reply `id`: handed over by whoever reads the connection, or read by this caller
    /// itself when the read half is free (see [`super::reader`]).
    async fn wait_reply(
        &self,
        id: u64,
        mut rx: oneshot::Receiver<TransportResult<Received>>,
    ) -> TransportResult<Received> {
        tokio::select! {
            biased;
            handed = &mut rx => handed.map_err(|_| TransportError::Closed)?,
            mut reader = self.shared.reader.lock() => {
                // The reply may have been handed over while this caller waited for the lock.
                if let Ok(handed) = rx.try_recv() {
                    return handed;
                }
                loop {
                    match reader.next(&self.shared.pending, id).await {
                        Ok(Some(mine)) => return Ok(mine),
                        Ok(None) => {}
                        Err(e) => {
                            drop(reader);
                            self.shared.fail_all();
                            return Err(e);
                        }
                    }
                }
            }
        }
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
        let (message, payload) = self.exchange(request, &payload, BytesMut::new()).await?;
        Ok(Reply {
            message,
            payload: Payload::single(payload.freeze()),
        })
    }

    async fn call_into(&self, request: Request, recv: BytesMut) -> TransportResult<(Response, BytesMut)> {
        self.exchange(request, &Payload::default(), recv).await
    }

    fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}
