//! The cluster's workers as the client sees them: connections, and which ones to avoid.
//!
//! Membership is the static list of the cluster config. Each worker has a small pool of
//! connections opened on first use; a worker that fails a request is avoided for
//! `worker_retry_after`, then tried again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hoard_transport::cluster::WorkerEntry;
use hoard_transport::tcp::{ConnectOptions, TcpTransport};
use hoard_transport::wire::{Payload, Reply, Request, Response};
use hoard_transport::{Transport, TransportError, TransportResult};
use parking_lot::Mutex;

/// One worker and its connections.
#[derive(Debug)]
pub struct WorkerHandle {
    /// The worker's config entry.
    pub entry: WorkerEntry,
    connections: Vec<tokio::sync::Mutex<Option<Arc<TcpTransport>>>>,
    next: AtomicUsize,
    avoid_until: Mutex<Option<Instant>>,
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
}

impl WorkerHandle {
    /// A handle with `connections` connection slots.
    pub fn new(entry: WorkerEntry, connections: usize) -> Self {
        WorkerHandle {
            entry,
            connections: (0..connections.max(1)).map(|_| tokio::sync::Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            avoid_until: Mutex::new(None),
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
    async fn connection(&self, policy: &ConnectPolicy, slot: usize) -> TransportResult<(Arc<TcpTransport>, bool)> {
        let mut guard = self.connections[slot].lock().await;
        if let Some(conn) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok((conn.clone(), false));
        }
        let conn = Arc::new(TcpTransport::connect(self.entry.addr, policy.options.clone()).await?);
        *guard = Some(conn.clone());
        Ok((conn, true))
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
            conn.call(request, payload).await
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
            match conn.call_into(request.clone(), recv).await {
                // A pooled connection the worker closed while idle (it restarted): no reader
                // watches idle connections, so the first call finds out. Reads are idempotent:
                // ask once more on a new connection.
                Err(TransportError::Closed | TransportError::Io(_)) if !fresh => {
                    let (conn, _) = self.connection(policy, slot).await?;
                    conn.call_into(request, BytesMut::with_capacity(capacity)).await
                }
                other => other,
            }
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
