//! Read path tests against the in-memory under-store, counted and slowed by `UnreliableStore`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hoard_transport::cluster::EvictionKind;
use hoard_transport::wire::Status;
use hoard_ufs::{InMemoryStore, UnderStore, UnreliableStore};

use super::*;
use crate::eviction;

const PS: u64 = 4096;

fn data(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())
}

async fn setup(len: usize, readahead: u64, delay_ms: u64) -> (Arc<ReadPath>, Arc<UnreliableStore>, Arc<FillSource>) {
    let mem: Arc<dyn UnderStore> = Arc::new(InMemoryStore::new());
    let meta = mem.put("f", data(len)).await.expect("put");
    let ufs = Arc::new(UnreliableStore::new(mem).with_delay(Duration::from_millis(delay_ms)));
    let store = Arc::new(
        MemoryPageStore::new(1 << 30, PS, false, eviction::from_kind(EvictionKind::S3fifo)).expect("memory tier"),
    );
    let config = ReadPathConfig {
        page_size: PS,
        chunk_size: 64 * PS,
        fill_request_max_bytes: 8 * PS,
        readahead_bytes: readahead,
        ufs_concurrency: 8,
    };
    let path = Arc::new(ReadPath::new(store, config, Arc::new(UfsMeter::default())));
    let key = hoard_transport::wire::FileKey {
        mount: "m".into(),
        path: "f".into(),
        version: meta.version.clone(),
    };
    let src = Arc::new(FillSource {
        content: Content::Ufs {
            ufs: ufs.clone(),
            path: "f".into(),
            version: meta.version,
        },
        file: FileId::of(&key),
        size: len as u64,
    });
    (path, ufs, src)
}

fn concat(pages: &ReadPages, offset: u64, len: u64) -> Vec<u8> {
    let mut all = Vec::new();
    for (_, p) in &pages.pages {
        all.extend_from_slice(&p.data);
    }
    let start = (offset - pages.pages[0].0 * PS) as usize;
    all[start..start + len as usize].to_vec()
}

#[tokio::test]
async fn concurrent_misses_of_a_page_make_one_request() {
    let (path, ufs, src) = setup(10 * PS as usize, 0, 50).await;
    let reads = (0..16).map(|_| {
        let (path, src) = (path.clone(), src.clone());
        tokio::spawn(async move { path.read(&src, 100, 10).await })
    });
    for r in futures_join(reads).await {
        let pages = r.expect("read");
        assert_eq!(concat(&pages, 100, 10), data(10 * PS as usize)[100..110].to_vec());
    }
    assert_eq!(ufs.read_range_calls(), 1, "single flight");
    // Cached now: no further request.
    path.read(&src, 0, PS).await.expect("hit");
    assert_eq!(ufs.read_range_calls(), 1);
}

#[tokio::test]
async fn missing_pages_are_coalesced_into_bounded_runs() {
    let (path, ufs, src) = setup(40 * PS as usize, 0, 0).await;
    // Warm page 5 so the range 0..20 has two runs: 0..5 and 6..20 (split at 8 pages).
    path.read(&src, 5 * PS, 1).await.expect("warm");
    let pages = path.read(&src, 0, 20 * PS).await.expect("read");
    assert_eq!(pages.pages.len(), 20);
    assert_eq!(pages.hits, 1);
    assert_eq!(
        concat(&pages, 0, 20 * PS),
        data(40 * PS as usize)[..20 * PS as usize].to_vec()
    );
    // 1 warm-up + run 0..5 + runs 6..14, 14..20.
    assert_eq!(ufs.read_range_calls(), 4);
}

#[tokio::test]
async fn sequential_reader_gets_read_ahead_within_the_chunk() {
    let (path, ufs, src) = setup(200 * PS as usize, 16 * PS, 0).await;
    path.read(&src, 0, 2 * PS).await.expect("first");
    path.read(&src, 2 * PS, 2 * PS).await.expect("sequential");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = ufs.read_range_calls();
    for i in 4..18 {
        assert!(
            path.store().contains(&PageKey {
                file: src.file,
                index: i
            }),
            "page {i} was not read ahead"
        );
    }
    let pages = path.read(&src, 4 * PS, 8 * PS).await.expect("read ahead pages");
    assert_eq!(pages.hits, 8);
    assert!(ufs.read_range_calls() >= before, "counter is monotonic");
    // Read-ahead never crosses the chunk (64 pages): another worker owns the next one.
    path.read(&src, 56 * PS, 4 * PS).await.expect("near the chunk end");
    path.read(&src, 60 * PS, 2 * PS).await.expect("sequential");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !path.store().contains(&PageKey {
            file: src.file,
            index: 64
        }),
        "read ahead crossed the chunk"
    );
}

#[tokio::test]
async fn a_changed_object_fails_with_stale_version_and_caches_nothing() {
    let (path, ufs, src) = setup(4 * PS as usize, 0, 0).await;
    ufs.inner()
        .put("f", data(4 * PS as usize + 1))
        .await
        .expect("overwrite");
    let err = path.read(&src, 0, PS).await.expect_err("version changed");
    assert_eq!(err.status, Status::StaleVersion);
    assert!(path.store().is_empty());
}

#[tokio::test]
async fn under_store_failures_are_reported_and_do_not_stick() {
    let (path, ufs, src) = setup(4 * PS as usize, 0, 0).await;
    ufs.set_fail_every(1);
    let err = path.read(&src, 0, PS).await.expect_err("under-store down");
    assert_eq!(err.status, Status::UfsUnavailable);
    ufs.set_fail_every(0);
    let pages = path.read(&src, 0, PS).await.expect("recovered");
    assert_eq!(pages.pages.len(), 1);
}

#[tokio::test]
async fn reads_past_the_end_are_clipped() {
    let (path, _, src) = setup(PS as usize + 10, 0, 0).await;
    let pages = path.read(&src, PS, 100).await.expect("tail");
    assert_eq!(pages.pages.len(), 1);
    assert_eq!(pages.pages[0].1.data.len(), 10);
    assert!(
        path.read(&src, 5 * PS, 10)
            .await
            .expect("past the end")
            .pages
            .is_empty()
    );
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}
