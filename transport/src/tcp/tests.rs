//! TCP transport tests on loopback: real sockets, a toy handler.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::*;
use crate::wire::{FileMeta, FrameLimits, Reply, Request, Response, StatRequest, Status};
use crate::{Transport, TransportError};

/// Answers Stat with a size equal to the path length, after a delay named in the path.
pub(crate) struct Toy;

impl Handler for Toy {
    async fn handle(&self, request: Request, payload: Bytes, _via: crate::TransportKind) -> Reply {
        match request {
            Request::Stat(s) if s.path.starts_with("bytes-") => {
                let n: usize = s.path["bytes-".len()..].parse().unwrap_or(0);
                let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
                let meta = FileMeta {
                    path: s.path.clone(),
                    size: n as u64,
                    version: "v".into(),
                    mtime_ms: 0,
                    homed: false,
                    metadata: None,
                };
                Reply {
                    message: Response::Stat(meta),
                    payload: crate::Payload::single(Bytes::from(data)),
                }
            }
            Request::Stat(s) => {
                let delay_ms: u64 = s.path.strip_prefix("sleep-").and_then(|d| d.parse().ok()).unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                Reply::message(Response::Stat(FileMeta {
                    path: s.path.clone(),
                    size: s.path.len() as u64 + payload.len() as u64,
                    version: "v".into(),
                    mtime_ms: 0,
                    homed: false,
                    metadata: None,
                }))
            }
            _ => Reply::error(Status::Unsupported, "toy"),
        }
    }
}

/// The toy worker's settings (token `sekrit`), with this page size and instance.
pub(crate) fn toy_config(page_size: u64, instance: u64) -> ServerConfig {
    ServerConfig {
        token: "sekrit".into(),
        worker_id: "toy".into(),
        page_size,
        limits: FrameLimits::default(),
        max_inflight_per_connection: 64,
        handshake_timeout: Duration::from_secs(2),
        instance,
        shm: None,
        rdma: None,
    }
}

async fn start() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(
        listener,
        Arc::new(Toy),
        toy_config(4096, 7),
        std::future::pending(),
    ));
    addr
}

fn stat(path: &str) -> Request {
    Request::Stat(StatRequest {
        mount: "m".into(),
        path: path.into(),
        fresh: false,
    })
}

#[tokio::test]
async fn handshake_and_many_requests_in_flight_out_of_order() {
    let addr = start().await;
    let conn = Arc::new(
        TcpTransport::connect(addr, ConnectOptions::new("sekrit"))
            .await
            .expect("connect"),
    );
    assert_eq!(conn.worker_id(), "toy");
    assert_eq!(conn.page_size(), 4096);
    // The slow request goes first; the fast ones must not wait for it.
    let slow = {
        let conn = conn.clone();
        tokio::spawn(async move { conn.call(stat("sleep-300"), Default::default()).await })
    };
    let started = std::time::Instant::now();
    for i in 0..50 {
        let path = format!("fast-{i}");
        let reply = conn
            .call(stat(&path), crate::Payload::single(Bytes::from_static(b"xyz")))
            .await
            .expect("reply");
        match reply.message {
            Response::Stat(m) => assert_eq!(m.size, path.len() as u64 + 3),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(!slow.is_finished() || started.elapsed() >= Duration::from_millis(300));
    let reply = slow.await.expect("join").expect("slow reply");
    assert!(matches!(reply.message, Response::Stat(m) if m.path == "sleep-300"));
}

#[tokio::test]
async fn wrong_token_is_refused() {
    let addr = start().await;
    let err = TcpTransport::connect(addr, ConnectOptions::new("guess"))
        .await
        .expect_err("must be refused");
    assert!(
        matches!(
            err,
            TransportError::Refused {
                status: Status::AuthFailed,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn garbage_closes_only_that_connection() {
    let addr = start().await;
    let good = TcpTransport::connect(addr, ConnectOptions::new("sekrit"))
        .await
        .expect("connect");
    // A second client handshakes, then sends random bytes.
    let bad = TcpTransport::connect(addr, ConnectOptions::new("sekrit"))
        .await
        .expect("connect");
    let mut raw = tokio::net::TcpStream::connect(addr).await.expect("raw connect");
    raw.write_all(&[0x5a; 4096]).await.expect("write garbage");
    drop(bad);
    for i in 0..10 {
        let reply = good
            .call(stat(&format!("k{i}")), Default::default())
            .await
            .expect("good connection still served");
        assert!(matches!(reply.message, Response::Stat(_)));
    }
    // The garbage connection was closed by the worker.
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut raw, &mut buf),
    )
    .await
    .expect("closed in time")
    .unwrap_or(0);
    assert_eq!(n, 0, "worker must close a connection that sent garbage");
}

#[tokio::test]
async fn dropped_call_does_not_leak_or_confuse_replies() {
    let addr = start().await;
    let conn = TcpTransport::connect(addr, ConnectOptions::new("sekrit"))
        .await
        .expect("connect");
    let timed_out = tokio::time::timeout(
        Duration::from_millis(20),
        conn.call(stat("sleep-200"), Default::default()),
    )
    .await;
    assert!(timed_out.is_err());
    let reply = conn.call(stat("after"), Default::default()).await.expect("reply");
    assert!(matches!(reply.message, Response::Stat(m) if m.path == "after"));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let reply = conn.call(stat("later"), Default::default()).await.expect("reply");
    assert!(matches!(reply.message, Response::Stat(m) if m.path == "later"));
}

#[tokio::test]
async fn call_into_lands_the_payload_in_the_callers_buffer() {
    let addr = start().await;
    let conn = TcpTransport::connect(addr, ConnectOptions::new("sekrit"))
        .await
        .expect("connect");
    let mut whole = bytes::BytesMut::with_capacity(3 << 20);
    let mut second = whole.split_off(1 << 20);
    let _rest = second.split_off(1 << 20);
    let base = whole.as_ptr();
    let (a, b) = tokio::join!(
        conn.call_into(stat("bytes-1048576"), whole),
        conn.call_into(stat("bytes-1048576"), second)
    );
    let (mut a, b) = (a.expect("reply a").1, b.expect("reply b").1);
    assert_eq!(a.as_ptr(), base, "the payload landed in the given buffer");
    a.unsplit(b);
    assert_eq!(a.as_ptr(), base);
    assert_eq!(a.len(), 2 << 20);
    assert!(a.iter().take(1 << 20).enumerate().all(|(i, b)| *b == (i % 251) as u8));
    // A buffer too small for the payload grows instead of failing.
    let (_, small) = conn
        .call_into(stat("bytes-5000"), bytes::BytesMut::with_capacity(16))
        .await
        .expect("reply");
    assert_eq!(small.len(), 5000);
}

/// Callers read replies themselves; one cancelled in the middle of a frame must leave the
/// connection readable for the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_cancelled_mid_frame_leave_the_connection_usable() {
    let addr = start().await;
    let conn = Arc::new(
        TcpTransport::connect(addr, ConnectOptions::new("sekrit"))
            .await
            .expect("connect"),
    );
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let call = conn.call_into(stat("bytes-2000000"), bytes::BytesMut::new());
            // Some calls give up at once, some mid-payload, some not at all.
            let limit = if i < 56 {
                Duration::from_micros(i * 500)
            } else {
                Duration::from_secs(60)
            };
            match tokio::time::timeout(limit, call).await {
                Ok(reply) => {
                    let (_, payload) = reply.expect("a reply that arrives is whole");
                    assert_eq!(payload.len(), 2_000_000);
                    assert!(
                        payload.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8),
                        "payload corrupted"
                    );
                    true
                }
                Err(_) => false,
            }
        }));
    }
    let mut completed = 0;
    for t in tasks {
        completed += usize::from(t.await.expect("task"));
    }
    assert!(
        completed > 0 && completed < 64,
        "the test must cancel some calls and finish others ({completed})"
    );
    for _ in 0..5 {
        let (_, payload) = conn
            .call_into(stat("bytes-100000"), bytes::BytesMut::new())
            .await
            .expect("still usable");
        assert!(payload.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    }
    assert!(!conn.is_closed());
}
