//! Composes, staged files and content-bound metadata, on a real local directory and journal.

use hoard_transport::wire::{ComposeRequest, ComposeSource, ETAG_KEY, ListEntry, STAGING_DIR};

use super::*;

impl Fixture {
    /// Write a staged part, committed with its ETag.
    async fn stage(&self, path: &str, data: &[u8], etag: &str) -> FileMeta {
        let (h, _) = self
            .write
            .open_session("m", path, false, false, Default::default())
            .await
            .expect("open");
        self.write
            .write(h, 0, Bytes::copy_from_slice(data))
            .await
            .expect("write");
        let content = vec![(ETAG_KEY.to_owned(), etag.to_owned())];
        self.write
            .publish(h, data.len() as u64, true, content)
            .await
            .expect("commit")
            .expect("meta")
    }

    async fn compose(&self, dst: &str, sources: &[&str], remove: bool, etag: Option<&str>) -> WriteResult<FileMeta> {
        let req = ComposeRequest {
            mount: "m".into(),
            dst: dst.into(),
            sources: sources
                .iter()
                .map(|p| ComposeSource {
                    path: (*p).into(),
                    version: None,
                })
                .collect(),
            remove_sources: remove,
            metadata: etag.map(|e| {
                vec![
                    ("color".to_owned(), "blue".to_owned()),
                    (ETAG_KEY.to_owned(), e.to_owned()),
                ]
            }),
            exclusive: false,
        };
        self.write.compose(req).await
    }

    fn listed(&self, entries: &[ListEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                ListEntry::File(f) => f.path.clone(),
                ListEntry::Prefix(p) => p.clone(),
            })
            .collect()
    }

    async fn list(&self, prefix: &str) -> Vec<String> {
        match self.write.list(&dir_listing(prefix), 1000).await {
            Some(page) => self.listed(&page.expect("list").entries),
            None => Vec::new(),
        }
    }
}

fn etag_of(meta: &FileMeta) -> Option<&str> {
    meta.metadata
        .as_ref()?
        .iter()
        .find(|(k, _)| k == ETAG_KEY)
        .map(|(_, v)| v.as_str())
}

/// Every key in the under-store directory, recursively.
async fn ufs_keys(store: &LocalUnderStore) -> Vec<String> {
    let req = hoard_ufs::ListRequest {
        prefix: String::new(),
        delimiter: None,
        continuation: None,
        max_keys: 1000,
    };
    store
        .list(&req)
        .await
        .expect("list")
        .objects
        .into_iter()
        .map(|o| o.path)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_parts_compose_into_a_file_that_persists_without_them() {
    for mode in [WriteMode::Back, WriteMode::Through] {
        let mut f = Fixture::new(mode);
        let (p1, p2) = (format!("{STAGING_DIR}/u1/00001"), format!("{STAGING_DIR}/u1/00002"));
        let one = f.stage(&p1, b"first part|", "e1").await;
        f.stage(&p2, b"second part", "e2").await;
        assert_eq!(etag_of(&one), Some("e1"), "{mode:?}");
        // Staged files are listed in the staging directory only, and never persisted.
        assert_eq!(
            f.list(&format!("{STAGING_DIR}/u1/")).await,
            vec![p1.clone(), p2.clone()]
        );
        assert!(!f.list("").await.iter().any(|k| k.starts_with(STAGING_DIR)), "{mode:?}");
        let meta = f
            .compose("obj", &[&p1, &p2], true, Some("whole-2"))
            .await
            .expect("compose");
        assert_eq!(meta.size, 22);
        assert_eq!(etag_of(&meta), Some("whole-2"));
        assert_eq!(f.read("obj").await, b"first part|second part");
        assert!(f.write.stat("m", &p1).is_none() && f.write.stat("m", &p2).is_none());
        assert!(f.list(&format!("{STAGING_DIR}/u1/")).await.is_empty(), "{mode:?}");
        f.sync().await;
        assert_eq!(
            ufs_bytes(&f.store, "obj").await.as_deref(),
            Some(&b"first part|second part"[..])
        );
        // The under-store object has the user metadata, not hoard's ETag (it gets its own).
        let kept = ufs_metadata(&f.store, "obj").await;
        assert_eq!(kept, md(&[("color", "blue")]), "{mode:?}");
        assert_eq!(ufs_keys(&f.store).await, vec!["obj".to_owned()], "{mode:?}");
        // The parts leave nothing in the journal to replay.
        f.restart();
        assert!(f.write.stat("m", &p1).is_none(), "{mode:?}");
        assert!(
            f.write.stat("m", "obj").is_none(),
            "persisted: an under-store object again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_parts_survive_a_restart_until_composed_or_deleted() {
    let mut f = Fixture::new(WriteMode::Back);
    let part = format!("{STAGING_DIR}/u2/00001");
    f.stage(&part, b"kept", "e").await;
    f.restart();
    let meta = f.write.stat("m", &part).expect("replayed").expect("a file");
    assert_eq!((meta.size, etag_of(&meta)), (4, Some("e")));
    f.write
        .delete("m", &format!("{STAGING_DIR}/u2"), true)
        .await
        .expect("abort");
    assert!(f.write.stat("m", &part).is_none());
    f.restart();
    assert!(
        f.write.stat("m", &part).is_none(),
        "a deleted staged file stays deleted"
    );
    f.sync().await;
    assert!(ufs_keys(&f.store).await.is_empty());
    // Staged files cannot be renamed or made directories.
    f.stage(&part, b"x", "e").await;
    let e = f.write.rename("m", &part, "out").await.expect_err("renamed out");
    assert_eq!(e.status, Status::InvalidArgument);
    let e = f
        .write
        .mkdir("m", &format!("{STAGING_DIR}/d"))
        .await
        .expect_err("mkdir");
    assert_eq!(e.status, Status::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compose_copies_under_store_objects_server_side_and_checks_versions() {
    let f = Fixture::new(WriteMode::Back);
    let seeded = f
        .store
        .put("src", Bytes::from_static(b"under-store bytes"))
        .await
        .expect("seed");
    let stale = ComposeRequest {
        mount: "m".into(),
        dst: "copy".into(),
        sources: vec![ComposeSource {
            path: "src".into(),
            version: Some("not-it".into()),
        }],
        remove_sources: false,
        metadata: None,
        exclusive: false,
    };
    let e = f.write.compose(stale.clone()).await.expect_err("stale");
    assert_eq!(e.status, Status::StaleVersion);
    let mut good = stale;
    good.sources[0].version = Some(seeded.version.clone());
    f.write.compose(good).await.expect("copy");
    // The copy's bytes are a span of the source key: nothing went into the journal.
    let entry = f.write.mounts["m"].ns.lock().get("copy").cloned().expect("entry");
    let segments = &entry.file().expect("file").segments;
    assert!(
        matches!(&segments[..], [Segment::Ufs { path, .. }] if path == "src"),
        "{segments:?}"
    );
    assert_eq!(f.read("copy").await, b"under-store bytes");
    // Twice the same source, and a file of the overlay.
    f.put("tail", b"+tail").await.expect("put");
    f.compose("twice", &["src", "src", "tail"], false, None)
        .await
        .expect("compose");
    assert_eq!(f.read("twice").await, b"under-store bytesunder-store bytes+tail");
    let e = f.compose("x", &["missing"], false, None).await.expect_err("missing");
    assert_eq!(e.status, Status::NotFound);
    let e = f.compose("x", &[], false, None).await.expect_err("no sources");
    assert_eq!(e.status, Status::InvalidArgument);
    f.sync().await;
    assert_eq!(
        ufs_bytes(&f.store, "copy").await.as_deref(),
        Some(&b"under-store bytes"[..])
    );
    assert_eq!(
        ufs_bytes(&f.store, "src").await.as_deref(),
        Some(&b"under-store bytes"[..])
    );
    assert_eq!(
        ufs_bytes(&f.store, "twice").await.as_deref(),
        Some(&b"under-store bytesunder-store bytes+tail"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_copy_of_an_under_store_object_holds_its_own_bytes() {
    let f = Fixture::new(WriteMode::Back);
    f.store.put("src", Bytes::from_static(b"original")).await.expect("seed");
    let part = format!("{STAGING_DIR}/u3/00001");
    f.compose(&part, &["src"], false, None).await.expect("staged copy");
    // The source may now be replaced and deleted by the persister: the part keeps its bytes.
    f.put("src", b"replaced").await.expect("put");
    f.sync().await;
    f.write.delete("m", "src", false).await.expect("delete");
    f.sync().await;
    assert!(ufs_bytes(&f.store, "src").await.is_none());
    assert_eq!(f.read(&part).await, b"original");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_metadata_travels_only_with_its_bytes() {
    let f = Fixture::new(WriteMode::Back);
    // A writer cannot open with content-bound keys (a mount carrying a replaced file's metadata
    // over would keep its old ETag): they are dropped, the rest kept.
    let carried = md(&[(ETAG_KEY, "old"), ("mode", "33188")]);
    let (h, _) = f
        .write
        .open_session("m", "f", false, false, carried)
        .await
        .expect("open");
    f.write.write(h, 0, Bytes::from_static(b"abc")).await.expect("write");
    let meta = f
        .write
        .publish(h, 3, true, Vec::new())
        .await
        .expect("commit")
        .expect("meta");
    assert_eq!(meta.metadata, Some(vec![("mode".to_owned(), "33188".to_owned())]));
    let meta = f.stage("g", b"abc", "md5-of-abc").await;
    assert_eq!(etag_of(&meta), Some("md5-of-abc"));
    // A rename keeps the bytes, so it keeps their ETag; an append changes them and drops it.
    f.write.rename("m", "g", "h").await.expect("rename");
    let renamed = f.write.stat("m", "h").expect("overlay").expect("file");
    assert_eq!(etag_of(&renamed), Some("md5-of-abc"));
    let appended = f.append("h", b"def").await.expect("append").expect("meta");
    assert_eq!(etag_of(&appended), None);
    // Only a commit of a created file may carry content metadata, and only content-bound keys.
    let (h, _) = f
        .write
        .open_session("m", "a", true, false, Metadata::new())
        .await
        .expect("open");
    f.write.write(h, 0, Bytes::from_static(b"x")).await.expect("write");
    let content = vec![(ETAG_KEY.to_owned(), "e".to_owned())];
    let e = f
        .write
        .publish(h, 1, true, content)
        .await
        .expect_err("append with an ETag");
    assert_eq!(e.status, Status::InvalidArgument);
    let (h, _) = f
        .write
        .open_session("m", "b", false, false, Metadata::new())
        .await
        .expect("open");
    f.write.write(h, 0, Bytes::from_static(b"x")).await.expect("write");
    let content = vec![("color".to_owned(), "red".to_owned())];
    let e = f
        .write
        .publish(h, 1, true, content)
        .await
        .expect_err("not content-bound");
    assert_eq!(e.status, Status::InvalidArgument);
}
