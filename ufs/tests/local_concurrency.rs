//! The local store under concurrent use, through the public API only.
//!
//! The cache's promise rests on "a versioned read never mixes two versions", and the local store
//! keeps it with temporary files, renames and checks on the open file. These tests race writers
//! against readers, and deletes (which prune directories) against writes into those directories.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use hoard_ufs::{ListRequest, LocalUnderStore, UfsError, UnderStore};

const OBJECT_BYTES: usize = 256 * 1024;

fn open() -> (tempfile::TempDir, Arc<LocalUnderStore>) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let store = LocalUnderStore::new(dir.path()).expect("open the store");
    (dir, Arc::new(store))
}

/// Overwrites `key` with uniform contents 1, 2, ... until `stop`; returns the number of writes.
async fn overwrite_until(store: Arc<LocalUnderStore>, key: &'static str, stop: Arc<AtomicBool>) -> u8 {
    let mut n = 0u8;
    while !stop.load(Ordering::Relaxed) && n < u8::MAX {
        n += 1;
        store
            .put(key, Bytes::from(vec![n; OBJECT_BYTES]))
            .await
            .expect("overwrite");
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn versioned_reads_never_mix_two_versions() {
    let (_dir, store) = open();
    store
        .put("obj", Bytes::from(vec![0u8; OBJECT_BYTES]))
        .await
        .expect("first write");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(overwrite_until(store.clone(), "obj", stop.clone()));
    let (mut whole, mut refused) = (0, 0);
    for _ in 0..300 {
        let meta = store.stat("obj").await.expect("stat");
        match store
            .read_range("obj", 0..OBJECT_BYTES as u64, Some(&meta.version))
            .await
        {
            Ok(bytes) => {
                assert_eq!(bytes.len(), OBJECT_BYTES);
                assert!(bytes.iter().all(|b| *b == bytes[0]), "a read mixed two versions");
                whole += 1;
            }
            Err(UfsError::VersionMismatch { .. }) => refused += 1,
            Err(e) => panic!("read failed: {e:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.expect("writer task");
    assert!(writes > 1, "the writer made progress");
    assert!(whole > 0, "some reads succeeded ({refused} were refused)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletes_that_prune_directories_do_not_break_writes_into_them() {
    let (_dir, store) = open();
    let mut tasks = Vec::new();
    for writer in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                let key = format!("shared/deep/dir/w{writer}-{i}");
                store
                    .put(&key, Bytes::from_static(b"x"))
                    .await
                    .expect("put into a directory being pruned");
                store.delete(&key).await.expect("delete");
            }
        }));
    }
    let lister = {
        let store = store.clone();
        tokio::spawn(async move {
            let req = ListRequest {
                prefix: "shared/".into(),
                ..ListRequest::default()
            };
            for _ in 0..100 {
                store.list(&req).await.expect("list while directories come and go");
            }
        })
    };
    for task in tasks {
        task.await.expect("writer task");
    }
    lister.await.expect("lister task");
    assert_eq!(
        store.list(&ListRequest::default()).await.expect("list"),
        Default::default()
    );
    let left: Vec<_> = std::fs::read_dir(store.root()).expect("read the root").collect();
    assert!(left.is_empty(), "empty directories were left behind: {left:?}");
}
