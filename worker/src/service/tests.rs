//! The service in process: `Locate` answers where pages sit, and a client's read-only mapping of
//! the memory tier copies exactly what `Read` sends.

use hoard_transport::cluster::ClusterConfig;
use hoard_transport::region::RegionReader;
use hoard_transport::wire::{FileKey, ReadRequest, Request, Response, StatRequest};

use super::*;
use crate::WorkerConfig;

const MIB: usize = 1 << 20;

async fn service(data: &std::path::Path, journal: &std::path::Path) -> Arc<WorkerService> {
    let text = format!(
        "token = \"t\"\n[[workers]]\nid = \"w1\"\naddr = \"127.0.0.1:1\"\nmemory_capacity = \"16MiB\"\n\
         journal_dir = \"{}\"\n[[mounts]]\nname = \"m\"\nufs = \"file://{}\"\n[worker]\nmemory_huge_pages = false\n",
        journal.display(),
        data.display()
    );
    let cluster = ClusterConfig::parse(&text).expect("config");
    let config = WorkerConfig::from_cluster(&cluster, "w1").expect("worker config");
    crate::build_service(&config).await.expect("service")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn located_pages_copied_from_a_mapping_are_the_bytes_a_read_sends() {
    let (data, journal) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let len = 3 * MIB + MIB / 2;
    let content: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(data.path().join("f"), &content).expect("write");
    let svc = service(data.path(), journal.path()).await;
    let stat = svc
        .handle(
            Request::Stat(StatRequest {
                mount: "m".into(),
                path: "f".into(),
                fresh: false,
            }),
            Bytes::new(),
            hoard_transport::TransportKind::Tcp,
        )
        .await;
    let Response::Stat(meta) = stat.message else {
        panic!("stat: {:?}", stat.message)
    };
    let req = ReadRequest {
        file: FileKey {
            mount: "m".into(),
            path: "f".into(),
            version: meta.version.clone(),
        },
        file_size: meta.size,
        offset: 0,
        len: len as u64,
    };
    let located = svc
        .handle(
            Request::Locate(req.clone()),
            Bytes::new(),
            hoard_transport::TransportKind::Shm,
        )
        .await;
    let Response::Located(at) = located.message else {
        panic!("locate: {:?}", located.message)
    };
    assert_eq!(at.pages.len(), 4, "three whole pages and a half one");
    assert_eq!(at.pages.iter().map(|p| p.index).collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert!(located.payload.is_empty(), "locations, not bytes");

    // A client's view: the arena's two descriptors, mapped read-only.
    let arena = svc.read_path.store().arena().clone();
    let reader = RegionReader::map(arena.id(), arena.fd(), arena.generations_fd(), arena.min_block()).expect("map");
    let mut copied = Vec::new();
    for p in &at.pages {
        let mut page = vec![0u8; p.len as usize];
        reader.copy_into(&p.into(), &mut page).expect("a cached page copies");
        assert_eq!(crc32c::crc32c(&page), p.crc32c, "page {}", p.index);
        copied.extend_from_slice(&page);
    }
    let read = svc
        .handle(
            Request::Read(req.clone()),
            Bytes::new(),
            hoard_transport::TransportKind::Shm,
        )
        .await;
    assert_eq!(read.payload.into_contiguous(), copied, "the same bytes as a read");
    assert_eq!(copied, content);

    // Evicted, the page's slot is given back: its old location no longer copies.
    let first = at.pages[0];
    svc.read_path.store().remove(&PageKey {
        file: FileId::of(&req.file),
        index: 0,
    });
    let mut page = vec![0u8; first.len as usize];
    assert!(
        reader.copy_into(&(&first).into(), &mut page).is_err(),
        "a location outlives its page"
    );
    // Located again, it is filled again, in a slot of its own.
    let again = svc
        .handle(Request::Locate(req), Bytes::new(), hoard_transport::TransportKind::Shm)
        .await;
    let Response::Located(again) = again.message else {
        panic!("locate: {:?}", again.message)
    };
    assert_ne!(
        (again.pages[0].offset, again.pages[0].generation),
        (first.offset, first.generation)
    );
}
