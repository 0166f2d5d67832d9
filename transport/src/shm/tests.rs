//! Shared memory on a real Unix socket: the handshake hands over the regions, the client copies
//! pages out of its own mapping, and control requests travel the socket as over TCP.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::net::UnixListener;

use super::*;
use crate::region::{Arena, ArenaConfig};
use crate::tcp::ConnectOptions;
use crate::tcp::tests::{Toy, toy_config};
use crate::wire::{Request, Response, StatRequest, Status};
use crate::{Transport, TransportError};

const PAGE: u64 = 64 << 10;

fn socket_path() -> std::path::PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("hoard-shm-test-{}-{n}.sock", std::process::id()))
}

/// A worker-side arena with one page of a known pattern, served on a fresh socket.
async fn start() -> (std::path::PathBuf, Arc<Arena>, bytes::Bytes) {
    let config = ArenaConfig {
        name: "hoard-shm-test".into(),
        bytes: 4 * PAGE,
        min_block: 4096,
        max_block: PAGE,
        huge_pages: false,
    };
    let arena = Arena::new(3, &config).expect("arena");
    let mut slot = arena.alloc(PAGE).expect("a slot");
    for (i, b) in slot.as_mut_slice().iter_mut().enumerate() {
        *b = (i % 241) as u8;
    }
    let (page, _) = slot.freeze(PAGE as usize);
    let path = socket_path();
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind");
    let server = toy_config(PAGE, 42);
    let regions = Arc::new(vec![SharedRegion::of_arena(&arena).expect("share")]);
    tokio::spawn(serve_unix(
        listener,
        Arc::new(Toy),
        server,
        regions,
        std::future::pending(),
    ));
    (path, arena, page)
}

#[tokio::test]
async fn the_handshake_hands_over_the_regions_and_pages_copy_from_the_mapping() {
    let (path, arena, page) = start().await;
    let conn = ShmTransport::connect(&path, ConnectOptions::new("sekrit"), None)
        .await
        .expect("connect");
    let hello = conn.hello();
    assert_eq!(
        (hello.worker_id.as_str(), hello.instance, hello.page_size),
        ("toy", 42, PAGE)
    );
    assert_eq!(hello.regions.len(), 1);
    assert_eq!(hello.regions[0].id, 3);
    assert_eq!(conn.mapped_bytes(), arena.mapped_bytes());
    assert_eq!(conn.kind().as_str(), "shm");

    let at = arena.locate(&page).expect("located");
    let mut whole = vec![0u8; PAGE as usize];
    conn.copy(&at, 0, &mut whole).expect("copy");
    assert_eq!(&whole[..], &page[..]);
    let mut part = vec![0u8; 1000];
    conn.copy(&at, 5000, &mut part).expect("copy a part");
    assert_eq!(&part[..], &page[5000..6000]);
    let mut buf = bytes::BytesMut::from(&b"head"[..]);
    conn.append(&at, 100, 50, &mut buf).expect("append a part");
    assert_eq!(&buf[..4], b"head");
    assert_eq!(&buf[4..], &page[100..150]);
    let sum = conn
        .with_part(&at, 10, 20, |b| b.iter().map(|x| u32::from(*x)).sum::<u32>())
        .expect("a view in place");
    assert_eq!(sum, page[10..30].iter().map(|x| u32::from(*x)).sum::<u32>());

    // A location of another region, or of a slot since given back, does not copy.
    let mut other = at;
    other.region = 9;
    assert!(conn.copy(&other, 0, &mut whole).is_err());
    drop(page);
    assert!(conn.copy(&at, 0, &mut whole).is_err(), "the slot was given back");
    assert!(conn.append(&at, 0, 10, &mut buf).is_err());
    assert!(conn.with_part(&at, 0, 10, |b| b.len()).is_err());
    assert_eq!(buf.len(), 54, "a failed append leaves the buffer as it was");

    // Control requests travel the socket.
    let reply = conn
        .call(
            Request::Stat(StatRequest {
                mount: "m".into(),
                path: "abc".into(),
                fresh: false,
            }),
            Default::default(),
        )
        .await
        .expect("stat");
    let Response::Stat(meta) = reply.message else {
        panic!("{:?}", reply.message)
    };
    assert_eq!(meta.size, 3);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_wrong_token_gets_no_regions_and_others_carry_on() {
    let (path, _arena, _page) = start().await;
    let err = ShmTransport::connect(&path, ConnectOptions::new("wrong"), None)
        .await
        .expect_err("refused");
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
    let ok = ShmTransport::connect(&path, ConnectOptions::new("sekrit"), None).await;
    assert!(ok.is_ok(), "{ok:?}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn socket_paths_name_the_worker_and_port() {
    let p = default_socket_path("w 1/x", 7301);
    let name = p.file_name().and_then(|n| n.to_str()).expect("name");
    assert_eq!(name, "hoard-w_1_x-7301.sock");
    assert!(host_id().is_some_and(|h| h.len() >= 32), "boot id readable");
}
