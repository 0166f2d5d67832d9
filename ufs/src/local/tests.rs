//! Tests of the local store: the shared conformance suite plus what only a file system can get
//! wrong (escaping the root, leftovers of temporary files, directories, edits behind our back).

use std::fs;

use bytes::Bytes;

use super::*;

fn store() -> (tempfile::TempDir, LocalUnderStore) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let store = LocalUnderStore::new(dir.path().join("root")).expect("open the store");
    (dir, store)
}

/// Names under `dir`, recursively, relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d).expect("read a test directory") {
            let path = entry.expect("read a directory entry").path();
            let rel = path.strip_prefix(dir).expect("under the root").display().to_string();
            if path.is_dir() {
                pending.push(path);
                out.push(rel + "/");
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let (_dir, store) = store();
    crate::conformance::run_all(&store).await;
    let left = tree(store.root());
    assert!(
        left.iter().all(|p| p.starts_with(MULTIPART_DIR)),
        "the suite left files behind: {left:?}"
    );
}

#[tokio::test]
async fn keys_that_escape_the_root_or_are_reserved_are_invalid() {
    let (_dir, store) = store();
    let bad = [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a/./b",
        "a//b",
        "a//",
        "/",
        ".hoard-multipart/x",
        "a/.hoard-tmp-1",
    ];
    for key in bad {
        let err = store.put(key, Bytes::from_static(b"x")).await.expect_err(key);
        assert!(matches!(err, UfsError::Invalid { .. }), "put {key:?}: {err:?}");
        let err = store.stat(key).await.expect_err(key);
        assert!(matches!(err, UfsError::Invalid { .. }), "stat {key:?}: {err:?}");
    }
    assert!(tree(store.root()).is_empty(), "nothing was written");
    let req = ListRequest {
        prefix: "../".to_owned(),
        ..ListRequest::default()
    };
    assert_eq!(store.list(&req).await.expect("list"), ListPage::default());
}

#[tokio::test]
async fn bookkeeping_files_are_not_listed_and_deletes_prune_directories() {
    let (_dir, store) = store();
    store.put("a/b/c", Bytes::from_static(b"abc")).await.expect("put");
    let id = store.create_multipart("big").await.expect("create_multipart");
    store
        .upload_part("big", &id, 1, Bytes::from_static(b"part"))
        .await
        .expect("upload_part");
    fs::write(store.root().join("a/.hoard-tmp-leftover"), b"junk").expect("write a fake temporary file");
    let all = store.list(&ListRequest::default()).await.expect("list");
    assert_eq!(
        all.objects.iter().map(|o| o.path.as_str()).collect::<Vec<_>>(),
        ["a/b/c"]
    );
    let top = ListRequest {
        delimiter: Some("/".to_owned()),
        ..ListRequest::default()
    };
    assert_eq!(store.list(&top).await.expect("list").common_prefixes, ["a/"]);

    store.abort_multipart("big", &id).await.expect("abort");
    fs::remove_file(store.root().join("a/.hoard-tmp-leftover")).expect("remove the fake temporary file");
    store.delete("a/b/c").await.expect("delete");
    assert_eq!(
        tree(store.root()),
        [format!("{MULTIPART_DIR}/")],
        "empty directories were pruned"
    );
    assert_eq!(store.list(&top).await.expect("list"), ListPage::default());
}

/// A write into a new directory and a delete that prunes one leave the directory empty for a
/// moment; a listing then must not take it for a marker (a renamed directory would come back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_empty_only_for_a_moment_are_never_listed_as_markers() {
    let (_dir, store) = store();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..400 {
                let key = format!("d{}/sub/f", i % 4);
                store.put(&key, Bytes::from_static(b"x")).await.expect("put");
                store.delete(&key).await.expect("delete");
            }
        })
    };
    let mut listings = 0;
    while !writer.is_finished() {
        let page = store.list(&ListRequest::default()).await.expect("list");
        let markers: Vec<&str> = page
            .objects
            .iter()
            .map(|o| o.path.as_str())
            .filter(|p| p.ends_with('/'))
            .collect();
        assert!(
            markers.is_empty(),
            "listing {listings} shows markers nobody made: {markers:?}"
        );
        listings += 1;
    }
    writer.await.expect("writer");
    assert!(listings > 10, "the listings ran alongside the writes ({listings})");
}

#[tokio::test]
async fn a_file_edited_in_place_no_longer_matches_its_version() {
    let (_dir, store) = store();
    let meta = store.put("f", Bytes::from_static(b"0123456789")).await.expect("put");
    fs::write(store.root().join("f"), b"changed, longer").expect("edit in place");
    let err = store
        .read_range("f", 0..4, Some(&meta.version))
        .await
        .expect_err("stale version");
    assert!(matches!(err, UfsError::VersionMismatch { .. }), "{err:?}");
    let now = store.stat("f").await.expect("stat");
    assert_eq!(now.size, 15);
    assert_eq!(
        &store.read_range("f", 0..7, Some(&now.version)).await.expect("read")[..],
        b"changed"
    );
}

#[tokio::test]
async fn same_size_rewrites_always_get_a_new_version() {
    let (_dir, store) = store();
    let mut seen = std::collections::HashSet::new();
    for i in 0..50u8 {
        let meta = store.put("f", Bytes::from(vec![i; 16])).await.expect("put");
        assert!(
            seen.insert(meta.version.clone()),
            "version {} repeated at write {i}",
            meta.version
        );
        assert_eq!(store.stat("f").await.expect("stat").version, meta.version);
    }
}

#[tokio::test]
async fn an_object_and_a_directory_of_objects_cannot_share_a_name() {
    let (_dir, store) = store();
    store.put("a/b", Bytes::from_static(b"1")).await.expect("put a/b");
    let err = store
        .put("a", Bytes::from_static(b"2"))
        .await
        .expect_err("a is a directory");
    assert!(matches!(err, UfsError::Invalid { .. }), "{err:?}");
    store.put("x", Bytes::from_static(b"3")).await.expect("put x");
    let err = store
        .put("x/y/z", Bytes::from_static(b"4"))
        .await
        .expect_err("x is a file");
    assert!(matches!(err, UfsError::Invalid { .. }), "{err:?}");
    assert!(store.stat("a").await.expect_err("a is not an object").is_not_found());
    store
        .delete("a")
        .await
        .expect("deleting a directory name is deleting a missing object");
    assert_eq!(
        &store.read_range("a/b", 0..1, None).await.expect("a/b survives")[..],
        b"1"
    );
}

#[tokio::test]
async fn files_written_by_others_are_objects() {
    let (_dir, store) = store();
    fs::create_dir_all(store.root().join("ext/dir")).expect("mkdir");
    fs::write(store.root().join("ext/dir/file.txt"), b"from outside").expect("write");
    fs::create_dir_all(store.root().join("empty/dir")).expect("mkdir");
    let meta = store.stat("ext/dir/file.txt").await.expect("stat");
    assert_eq!(meta.size, 12);
    assert!(meta.mtime.is_some());
    let top = ListRequest {
        delimiter: Some("/".to_owned()),
        ..ListRequest::default()
    };
    assert_eq!(
        store.list(&top).await.expect("list").common_prefixes,
        ["empty/", "ext/"],
        "an empty directory made outside is a directory marker"
    );
    let flat = store.list(&ListRequest::default()).await.expect("list");
    assert_eq!(
        flat.objects.iter().map(|o| o.path.as_str()).collect::<Vec<_>>(),
        ["empty/dir/", "ext/dir/file.txt"]
    );
}

#[tokio::test]
async fn a_directory_marker_is_the_directory_itself() {
    let (_dir, store) = store();
    let meta = store.put("a/b/", Bytes::new()).await.expect("put a marker");
    assert_eq!((meta.path.as_str(), meta.size), ("a/b/", 0));
    assert_eq!(tree(store.root()), ["a/", "a/b/"], "the directory and nothing else");
    let err = store
        .put("a/c/", Bytes::from_static(b"data"))
        .await
        .expect_err("a marker holds no data");
    assert!(matches!(err, UfsError::Invalid { .. }), "{err:?}");
    let err = store
        .create_multipart("a/c/")
        .await
        .expect_err("nor a multipart upload");
    assert!(matches!(err, UfsError::Invalid { .. }), "{err:?}");
    store.put("f", Bytes::from_static(b"1")).await.expect("put f");
    let err = store.put("f/", Bytes::new()).await.expect_err("f is a file");
    assert!(matches!(err, UfsError::Invalid { .. }), "{err:?}");
    assert!(store.stat("f/").await.expect_err("f is no directory").is_not_found());
    store.delete("f/").await.expect("deleting a missing marker succeeds");
    store.delete("f").await.expect("delete f");

    store
        .put("a/b/x", Bytes::from_static(b"x"))
        .await
        .expect("put into the marker");
    assert_eq!(
        store.stat("a/b/").await.expect("stat").size,
        0,
        "any directory stats as a marker"
    );
    let flat = store.list(&ListRequest::default()).await.expect("list");
    let keys: Vec<_> = flat.objects.iter().map(|o| o.path.as_str()).collect();
    assert_eq!(
        keys,
        ["a/b/x"],
        "a directory that holds objects does not list as a marker"
    );
    store.delete("a/b/").await.expect("delete a non-empty marker");
    assert_eq!(
        &store.read_range("a/b/x", 0..1, None).await.expect("its objects stay")[..],
        b"x"
    );
    store.delete("a/b/x").await.expect("delete");
    assert!(
        tree(store.root()).is_empty(),
        "deleting the last object pruned the directories"
    );

    store.put("p/q/r/", Bytes::new()).await.expect("put a deep marker");
    store.delete("p/q/r/").await.expect("delete it");
    assert!(
        tree(store.root()).is_empty(),
        "deleting a marker prunes its empty parents"
    );
}

#[tokio::test]
async fn copies_to_and_from_markers_are_empty() {
    let (_dir, store) = store();
    store.put("d/", Bytes::new()).await.expect("put a marker");
    let meta = store.copy("d/", "empty").await.expect("copy a marker to an object");
    assert_eq!(meta.size, 0);
    store
        .copy("empty", "e/")
        .await
        .expect("copy an empty object to a marker");
    assert!(store.root().join("e").is_dir());
    store.put("full", Bytes::from_static(b"x")).await.expect("put");
    let err = store.copy("full", "g/").await.expect_err("a marker holds no data");
    assert!(matches!(err, UfsError::Invalid { .. }), "{err:?}");
    assert!(
        store
            .copy("missing/", "h")
            .await
            .expect_err("no such marker")
            .is_not_found()
    );
}

#[tokio::test]
async fn copied_parts_are_staged_like_uploaded_ones() {
    let (_dir, store) = store();
    let src = store.put("src", Bytes::from_static(b"0123456789")).await.expect("put");
    let id = store.create_multipart("m").await.expect("create");
    for (range, why) in [(3..3, "an empty range"), (5..11, "a range past the end")] {
        let err = store
            .upload_part_copy("m", &id, 1, "src", range, None)
            .await
            .expect_err(why);
        assert!(matches!(err, UfsError::Invalid { .. }), "{why}: {err:?}");
    }
    store.put("d/", Bytes::new()).await.expect("put a marker");
    let err = store
        .upload_part_copy("m", &id, 1, "d/", 0..1, None)
        .await
        .expect_err("a marker has no bytes");
    assert!(matches!(err, UfsError::Invalid { .. }), "{err:?}");
    let err = store
        .upload_part_copy("other", &id, 1, "src", 0..1, None)
        .await
        .expect_err("upload of another key");
    assert!(err.is_not_found(), "{err:?}");
    let p1 = store
        .upload_part_copy("m", &id, 1, "src", 2..6, Some(&src.version))
        .await
        .expect("copy part 1");
    let p2 = store
        .upload_part_copy("m", &id, 2, "src", 0..2, None)
        .await
        .expect("copy part 2");
    assert!(
        store.root().join(MULTIPART_DIR).join(&id).join("1").is_file(),
        "a copied part is a part file"
    );
    let meta = store
        .complete_multipart("m", &id, vec![p1, p2])
        .await
        .expect("complete");
    assert_eq!(
        &store.read_range("m", 0..6, Some(&meta.version)).await.expect("read")[..],
        b"234501"
    );
}

#[tokio::test]
async fn multipart_staging_is_removed_once_complete() {
    let (_dir, store) = store();
    let id = store.create_multipart("m").await.expect("create");
    let p1 = store
        .upload_part("m", &id, 1, Bytes::from_static(b"hello "))
        .await
        .expect("part 1");
    let p2 = store
        .upload_part("m", &id, 2, Bytes::from_static(b"world"))
        .await
        .expect("part 2");
    let err = store
        .upload_part("other", &id, 3, Bytes::new())
        .await
        .expect_err("upload of another key");
    assert!(err.is_not_found(), "{err:?}");
    let err = store
        .complete_multipart("m", &id, vec![p2.clone(), p1.clone()])
        .await
        .expect_err("descending");
    assert!(matches!(err, UfsError::Invalid { .. }), "{err:?}");
    let meta = store
        .complete_multipart("m", &id, vec![p1, p2])
        .await
        .expect("complete");
    assert_eq!(meta.size, 11);
    assert_eq!(
        &store.read_range("m", 0..11, Some(&meta.version)).await.expect("read")[..],
        b"hello world"
    );
    assert_eq!(tree(store.root()), [format!("{MULTIPART_DIR}/"), "m".to_owned()]);
}

#[test]
fn a_root_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let file = dir.path().join("file");
    fs::write(&file, b"x").expect("write");
    let err = LocalUnderStore::new(&file).expect_err("not a directory");
    assert!(matches!(err, UfsError::Io { .. } | UfsError::Config(_)), "{err:?}");
}
