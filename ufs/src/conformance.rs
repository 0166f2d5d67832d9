//! The contract of [`UnderStore`], as executable checks every implementation must pass.
//!
//! The cache above trusts an under-store on a few points: bytes read back are the bytes written,
//! ranges clip, a version names exactly one content, listings follow S3's rules. Each check here
//! pins one of these down against any `&dyn UnderStore`, so the local directory, the in-memory
//! double and a real S3 server (Garage in `hoard-tests`) are held to the same behaviour.
//!
//! Every check works under its own random key prefix, so runs against a shared bucket do not
//! collide, and deletes what it wrote. A failed check panics with a message saying what differed.

use std::error::Error;

use bytes::{Bytes, BytesMut};

use crate::{
    CompletedPart, ListPage, ListRequest, MIN_PART_SIZE, Metadata, ObjectMeta, UfsError, UfsResult, UnderStore,
};

/// [`MIN_PART_SIZE`] as a buffer length.
const MIN_PART_BYTES: usize = MIN_PART_SIZE as usize;

/// Runs every check of this module, in order.
///
/// # Panics
/// On the first check that fails.
pub async fn run_all(store: &dyn UnderStore) {
    put_stat_read(store).await;
    ranged_reads(store).await;
    overwrite_changes_version(store).await;
    missing_keys(store).await;
    special_keys(store).await;
    list_prefix(store).await;
    list_delimiter(store).await;
    list_pagination(store).await;
    multipart(store).await;
    multipart_abort(store).await;
    multipart_rejects_bad_parts(store).await;
    multipart_with_copied_parts(store).await;
    copy(store).await;
    user_metadata(store).await;
    delete(store).await;
    directory_markers(store).await;
}

/// A fresh key prefix for one check: `hoard-conformance/<random>/<name>/`.
fn scratch(name: &str) -> String {
    format!("hoard-conformance/{:016x}/{name}/", rand::random::<u64>())
}

/// `len` bytes of a pattern that depends on `seed` and has a prime period, so a shifted or
/// mixed-up read does not compare equal.
pub fn pattern(seed: u64, len: usize) -> Bytes {
    (0..len as u64)
        .map(|i| ((i * 7 + seed * 13 + i / 251) % 251) as u8)
        .collect()
}

/// An error with its whole `source()` chain, for panic messages.
fn chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The value of `result`, or a panic naming `what` and the error.
fn ok<T>(what: &str, result: UfsResult<T>) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {}", chain(&e)))
}

/// The error of `result`, or a panic saying that `what` should have failed.
fn fails<T: std::fmt::Debug>(what: &str, result: UfsResult<T>) -> UfsError {
    match result {
        Ok(v) => panic!("{what} succeeded with {v:?} but should have failed"),
        Err(e) => e,
    }
}

fn assert_not_found<T: std::fmt::Debug>(what: &str, result: UfsResult<T>) {
    let err = fails(what, result);
    assert!(err.is_not_found(), "{what}: expected NotFound, got {}", chain(&err));
}

fn assert_version_mismatch<T: std::fmt::Debug>(what: &str, result: UfsResult<T>) {
    let err = fails(what, result);
    assert!(
        matches!(err, UfsError::VersionMismatch { .. }),
        "{what}: expected VersionMismatch, got {}",
        chain(&err)
    );
}

async fn put(store: &dyn UnderStore, key: &str, data: &Bytes) -> ObjectMeta {
    let meta = ok(&format!("put {key}"), store.put(key, data.clone()).await);
    assert_eq!(meta.path, key, "put {key} returned the metadata of another key");
    assert_eq!(meta.size, data.len() as u64, "put {key} returned the wrong size");
    assert!(!meta.version.is_empty(), "put {key} returned an empty version");
    meta
}

async fn read(store: &dyn UnderStore, key: &str, range: std::ops::Range<u64>, version: Option<&str>) -> Bytes {
    let what = format!("read_range {key} {range:?} version {version:?}");
    ok(&what, store.read_range(key, range, version).await)
}

async fn cleanup(store: &dyn UnderStore, keys: &[String]) {
    for key in keys {
        ok(&format!("delete {key} (cleanup)"), store.delete(key).await);
    }
}

/// Every entry of a listing, following continuations; checks page sizes and that no entry repeats.
pub async fn list_all(store: &dyn UnderStore, req: &ListRequest) -> ListPage {
    let mut all = ListPage::default();
    let mut req = req.clone();
    for _ in 0..10_000 {
        let page = ok(&format!("list {req:?}"), store.list(&req).await);
        let entries = page.objects.len() + page.common_prefixes.len();
        assert!(
            req.max_keys == 0 || entries <= req.max_keys as usize,
            "page of {entries} entries for {req:?}"
        );
        assert!(
            entries > 0 || page.next_continuation.is_none(),
            "empty page with a continuation for {req:?}"
        );
        all.objects.extend(page.objects);
        all.common_prefixes.extend(page.common_prefixes);
        match page.next_continuation {
            Some(token) => req.continuation = Some(token),
            None => {
                let mut keys: Vec<_> = all
                    .objects
                    .iter()
                    .map(|o| &o.path)
                    .chain(&all.common_prefixes)
                    .collect();
                let listed = keys.len();
                keys.sort();
                keys.dedup();
                assert_eq!(keys.len(), listed, "listing {req:?} repeated entries");
                return all;
            }
        }
    }
    panic!("listing {req:?} did not end after 10000 pages");
}

fn keys_of(page: &ListPage) -> Vec<&str> {
    page.objects.iter().map(|o| o.path.as_str()).collect()
}

fn list_req(prefix: &str, delimiter: Option<&str>, max_keys: u32) -> ListRequest {
    ListRequest {
        prefix: prefix.to_owned(),
        delimiter: delimiter.map(str::to_owned),
        continuation: None,
        max_keys,
    }
}

/// Objects of 0, 1, 4096 and 1 MiB + 1 bytes read back whole, with and without their version,
/// and `put` reports the same metadata as `stat`.
pub async fn put_stat_read(store: &dyn UnderStore) {
    let root = scratch("put-stat-read");
    let mut keys = Vec::new();
    for (seed, size) in [0usize, 1, 4096, 1024 * 1024 + 1].into_iter().enumerate() {
        let key = format!("{root}object-{size}");
        let data = pattern(seed as u64, size);
        let put_meta = put(store, &key, &data).await;
        let stat_meta = ok(&format!("stat {key}"), store.stat(&key).await);
        assert_eq!(
            (&stat_meta.path, stat_meta.size, &stat_meta.version),
            (&put_meta.path, put_meta.size, &put_meta.version),
            "stat {key} disagrees with put"
        );
        let whole = read(store, &key, 0..size as u64, Some(&put_meta.version)).await;
        assert!(
            whole == data,
            "read of {key} ({size} bytes) returned other bytes ({} bytes)",
            whole.len()
        );
        let unversioned = read(store, &key, 0..size as u64 + 100, None).await;
        assert!(unversioned == data, "unversioned read of {key} returned other bytes");
        keys.push(key);
    }
    cleanup(store, &keys).await;
}

/// Ranges inside, across and past the end of an object, with and without a version.
pub async fn ranged_reads(store: &dyn UnderStore) {
    let key = scratch("ranged-reads") + "object";
    let data = pattern(7, 10_000);
    let meta = put(store, &key, &data).await;
    let cases: [(std::ops::Range<u64>, std::ops::Range<usize>); 8] = [
        (0..10, 0..10),
        (4000..5000, 4000..5000),
        (9999..10_000, 9999..10_000),
        (9990..20_000, 9990..10_000),
        (0..u64::MAX, 0..10_000),
        (10_000..10_010, 0..0),
        (20_000..30_000, 0..0),
        (5..5, 0..0),
    ];
    for (range, expected) in cases {
        for version in [None, Some(meta.version.as_str())] {
            let got = read(store, &key, range.clone(), version).await;
            let want = data.slice(expected.clone());
            assert!(
                got == want,
                "read_range {range:?} (version {version:?}) gave {} bytes, not {expected:?}",
                got.len()
            );
        }
    }
    cleanup(store, &[key]).await;
}

/// Overwriting changes the version, and reads naming the old version fail with `VersionMismatch`
/// (even for a range past the end), while reads of the new version see the new bytes.
pub async fn overwrite_changes_version(store: &dyn UnderStore) {
    let key = scratch("overwrite") + "object";
    let (old_data, new_data) = (pattern(1, 4096), pattern(2, 4096));
    let old = put(store, &key, &old_data).await;
    let new = put(store, &key, &new_data).await;
    assert_ne!(
        old.version, new.version,
        "overwriting {key} with other bytes of the same size kept its version"
    );
    assert_eq!(ok("stat after overwrite", store.stat(&key).await).version, new.version);
    for range in [0..10, 4000..5000, 5000..6000, 0..0] {
        let err = fails(
            &format!("read {range:?} with the old version"),
            store.read_range(&key, range, Some(&old.version)).await,
        );
        assert!(
            matches!(err, UfsError::VersionMismatch { .. }),
            "expected VersionMismatch, got {}",
            chain(&err)
        );
    }
    let err = fails(
        "read with a made-up version",
        store.read_range(&key, 0..10, Some("no-such-version")).await,
    );
    assert!(
        matches!(err, UfsError::VersionMismatch { .. }),
        "expected VersionMismatch, got {}",
        chain(&err)
    );
    assert!(
        read(store, &key, 0..4096, Some(&new.version)).await == new_data,
        "read of the new version"
    );
    cleanup(store, &[key]).await;
}

/// `stat` and `read_range` of a missing key fail with `NotFound`.
pub async fn missing_keys(store: &dyn UnderStore) {
    let key = scratch("missing") + "nothing-here";
    assert_not_found("stat of a missing key", store.stat(&key).await);
    assert_not_found("read of a missing key", store.read_range(&key, 0..10, None).await);
    assert_not_found(
        "versioned read of a missing key",
        store.read_range(&key, 0..10, Some("v")).await,
    );
    assert_not_found("empty read of a missing key", store.read_range(&key, 0..0, None).await);
}

/// Keys with spaces, `+`, `%`, `?`, `&`, `=` and non-ASCII characters are stored, listed and
/// copied under exactly their name.
pub async fn special_keys(store: &dyn UnderStore) {
    let root = scratch("special");
    let names = [
        "with space",
        "plus+sign",
        "percent%20",
        "query?x=1&y=2",
        "ünïcødé-日本",
        "tilde~star*",
    ];
    let mut keys: Vec<String> = names.iter().map(|n| format!("{root}{n}")).collect();
    for (seed, key) in keys.iter().enumerate() {
        let data = pattern(seed as u64, 100 + seed);
        put(store, key, &data).await;
        assert!(read(store, key, 0..1000, None).await == data, "read back {key:?}");
    }
    let copied = format!("{root}copy of {}", names[3]);
    ok(&format!("copy {:?}", keys[3]), store.copy(&keys[3], &copied).await);
    assert!(
        read(store, &copied, 0..1000, None).await == pattern(3, 103),
        "read back the copy {copied:?}"
    );
    keys.push(copied);
    let listed = list_all(store, &list_req(&root, None, 0)).await;
    let mut expected: Vec<&str> = keys.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(keys_of(&listed), expected, "listing of special keys");
    cleanup(store, &keys).await;
}

/// A prefix filters keys by string prefix, not by "directory".
pub async fn list_prefix(store: &dyn UnderStore) {
    let root = scratch("list-prefix");
    let keys: Vec<String> = ["p/1", "p/2", "p0", "q/1"]
        .iter()
        .map(|k| format!("{root}{k}"))
        .collect();
    for (seed, key) in keys.iter().enumerate() {
        put(store, key, &pattern(seed as u64, seed + 1)).await;
    }
    let under_p = list_all(store, &list_req(&format!("{root}p/"), None, 0)).await;
    assert_eq!(keys_of(&under_p), [&keys[0], &keys[1]], "listing {root}p/");
    assert_eq!(
        under_p.objects.iter().map(|o| o.size).collect::<Vec<_>>(),
        [1, 2],
        "sizes in the listing"
    );
    let ok_versions = under_p.objects.iter().all(|o| !o.version.is_empty());
    assert!(ok_versions, "listed objects carry versions: {:?}", under_p.objects);
    let starting_p = list_all(store, &list_req(&format!("{root}p"), None, 0)).await;
    assert_eq!(keys_of(&starting_p), [&keys[0], &keys[1], &keys[2]], "listing {root}p");
    assert!(
        starting_p.common_prefixes.is_empty(),
        "no delimiter, no common prefixes"
    );
    let none = ok(
        "list a prefix without keys",
        store.list(&list_req(&format!("{root}zzz"), None, 0)).await,
    );
    assert_eq!(none, ListPage::default(), "listing a prefix without keys");
    cleanup(store, &keys).await;
}

/// With delimiter `/`, keys `a/b/c`, `a/d`, `e` list as object `e` and common prefix `a/`.
pub async fn list_delimiter(store: &dyn UnderStore) {
    let root = scratch("list-delimiter");
    let keys: Vec<String> = ["a/b/c", "a/d", "e"].iter().map(|k| format!("{root}{k}")).collect();
    for key in &keys {
        put(store, key, &pattern(0, 3)).await;
    }
    let top = list_all(store, &list_req(&root, Some("/"), 0)).await;
    assert_eq!(keys_of(&top), [format!("{root}e")], "objects at {root}");
    assert_eq!(top.common_prefixes, [format!("{root}a/")], "common prefixes at {root}");
    let under_a = list_all(store, &list_req(&format!("{root}a/"), Some("/"), 0)).await;
    assert_eq!(keys_of(&under_a), [format!("{root}a/d")], "objects at {root}a/");
    assert_eq!(
        under_a.common_prefixes,
        [format!("{root}a/b/")],
        "common prefixes at {root}a/"
    );
    let flat = list_all(store, &list_req(&root, None, 0)).await;
    assert_eq!(
        keys_of(&flat),
        keys.iter().map(String::as_str).collect::<Vec<_>>(),
        "flat listing"
    );
    cleanup(store, &keys).await;
}

/// Pages of `max_keys` entries resume after the continuation without gaps or repeats, with and
/// without a delimiter.
pub async fn list_pagination(store: &dyn UnderStore) {
    let root = scratch("list-pagination");
    let flat: Vec<String> = (0..5).map(|i| format!("{root}k{i}")).collect();
    let grouped: Vec<String> = ["d1/x", "d1/y", "d2/x", "f1", "f2"]
        .iter()
        .map(|k| format!("{root}g/{k}"))
        .collect();
    for key in flat.iter().chain(&grouped) {
        put(store, key, &pattern(1, 10)).await;
    }
    let first = ok(
        "list the first page",
        store.list(&list_req(&format!("{root}k"), None, 2)).await,
    );
    assert_eq!(keys_of(&first), [&flat[0], &flat[1]], "first page of 2");
    assert!(
        first.next_continuation.is_some(),
        "a first page of 2 out of 5 has a continuation"
    );
    let all = list_all(store, &list_req(&format!("{root}k"), None, 2)).await;
    assert_eq!(
        keys_of(&all),
        flat.iter().map(String::as_str).collect::<Vec<_>>(),
        "pages of 2"
    );
    let by_one = list_all(store, &list_req(&format!("{root}g/"), Some("/"), 1)).await;
    assert_eq!(
        keys_of(&by_one),
        [&grouped[3], &grouped[4]],
        "objects in pages of 1 with a delimiter"
    );
    assert_eq!(
        by_one.common_prefixes,
        [format!("{root}g/d1/"), format!("{root}g/d2/")],
        "prefixes in pages of 1"
    );
    let mut keys = flat;
    keys.extend(grouped);
    cleanup(store, &keys).await;
}

/// Three parts (5 MiB, 5 MiB, 1 MiB + 3) uploaded out of order complete into their concatenation.
pub async fn multipart(store: &dyn UnderStore) {
    let key = scratch("multipart") + "object";
    let parts = [
        pattern(1, MIN_PART_BYTES),
        pattern(2, MIN_PART_BYTES),
        pattern(3, 1024 * 1024 + 3),
    ];
    let id = ok("create_multipart", store.create_multipart(&key).await);
    let mut done = Vec::new();
    for n in [3u32, 1, 2] {
        let data = parts[n as usize - 1].clone();
        let part = ok(&format!("upload_part {n}"), store.upload_part(&key, &id, n, data).await);
        assert_eq!(part.part_number, n, "upload_part returned another part number");
        done.push(part);
    }
    done.sort_by_key(|p| p.part_number);
    let meta = ok("complete_multipart", store.complete_multipart(&key, &id, done).await);
    let whole = parts.iter().fold(BytesMut::new(), |mut b, p| {
        b.extend_from_slice(p);
        b
    });
    let whole = whole.freeze();
    assert_eq!(
        (meta.path.as_str(), meta.size),
        (key.as_str(), whole.len() as u64),
        "completed object"
    );
    assert_eq!(
        ok("stat the completed object", store.stat(&key).await).version,
        meta.version
    );
    let got = read(store, &key, 0..whole.len() as u64, Some(&meta.version)).await;
    assert!(
        got == whole,
        "the completed object is not the concatenation of its parts"
    );
    let edge = (MIN_PART_BYTES - 10) as u64..(MIN_PART_BYTES + 10) as u64;
    assert!(read(store, &key, edge.clone(), None).await == whole.slice(MIN_PART_BYTES - 10..MIN_PART_BYTES + 10));
    cleanup(store, &[key]).await;
}

/// An aborted upload is gone: its parts cannot be completed or added to, and no object appears.
pub async fn multipart_abort(store: &dyn UnderStore) {
    let key = scratch("multipart-abort") + "object";
    let id = ok("create_multipart", store.create_multipart(&key).await);
    let part = ok("upload_part", store.upload_part(&key, &id, 1, pattern(1, 1000)).await);
    ok("abort_multipart", store.abort_multipart(&key, &id).await);
    assert_not_found(
        "complete after abort",
        store.complete_multipart(&key, &id, vec![part]).await,
    );
    assert_not_found(
        "upload_part after abort",
        store.upload_part(&key, &id, 2, pattern(2, 10)).await,
    );
    assert_not_found("stat of an aborted upload's key", store.stat(&key).await);
}

/// Completing with a part that was never uploaded, or with a wrong tag, is a permanent error.
pub async fn multipart_rejects_bad_parts(store: &dyn UnderStore) {
    let key = scratch("multipart-bad-parts") + "object";
    let id = ok("create_multipart", store.create_multipart(&key).await);
    let part = ok("upload_part", store.upload_part(&key, &id, 1, pattern(1, 1000)).await);
    let missing = vec![CompletedPart {
        part_number: 2,
        tag: part.tag.clone(),
    }];
    let wrong_tag = vec![CompletedPart {
        part_number: 1,
        tag: "\"0123456789abcdef0123456789abcdef\"".to_owned(),
    }];
    for (what, parts) in [
        ("a part never uploaded", missing),
        ("a wrong tag", wrong_tag),
        ("no parts", Vec::new()),
    ] {
        let err = fails(
            &format!("complete with {what}"),
            store.complete_multipart(&key, &id, parts).await,
        );
        assert!(
            err.is_permanent() && !err.is_not_found(),
            "complete with {what}: got {}",
            chain(&err)
        );
    }
    assert_not_found("stat after failed completes", store.stat(&key).await);
    ok("abort_multipart", store.abort_multipart(&key, &id).await);
}

/// An object of 6 MiB + 5 bytes is completed from a first part copied server-side (5 MiB + 1
/// bytes from inside a source, at the source's version) and an uploaded last part, and reads back
/// byte-exact. A copy naming a stale source version fails with `VersionMismatch`, a copy of a
/// missing source with `NotFound`, and neither leaves a part behind.
pub async fn multipart_with_copied_parts(store: &dyn UnderStore) {
    let root = scratch("multipart-copied-parts");
    let (src, key) = (format!("{root}source"), format!("{root}object"));
    let stale = put(store, &src, &pattern(10, MIN_PART_BYTES + 4096)).await;
    let source = pattern(11, MIN_PART_BYTES + 4096);
    let current = put(store, &src, &source).await;
    assert_ne!(stale.version, current.version, "overwriting {src} kept its version");
    let copied = 1000..(MIN_PART_BYTES + 1001) as u64;
    let last = pattern(12, 1024 * 1024 + 4);
    let id = ok("create_multipart", store.create_multipart(&key).await);
    assert_version_mismatch(
        "upload_part_copy of a stale source version",
        (store.upload_part_copy(&key, &id, 1, &src, copied.clone(), Some(&stale.version))).await,
    );
    assert_not_found(
        "upload_part_copy of a missing source",
        (store.upload_part_copy(&key, &id, 1, &format!("{root}missing"), 0..10, None)).await,
    );
    let what = "upload_part_copy at the current version";
    let first = store.upload_part_copy(&key, &id, 1, &src, copied.clone(), Some(&current.version));
    let first = ok(what, first.await);
    assert_eq!(first.part_number, 1, "{what} returned another part number");
    assert!(!first.tag.is_empty(), "{what} returned an empty tag");
    let second = ok("upload_part 2", store.upload_part(&key, &id, 2, last.clone()).await);
    let meta = ok(
        "complete_multipart",
        store.complete_multipart(&key, &id, vec![first, second]).await,
    );
    let mut whole = BytesMut::from(&source[copied.start as usize..copied.end as usize]);
    whole.extend_from_slice(&last);
    let whole = whole.freeze();
    assert_eq!(
        (meta.path.as_str(), meta.size),
        (key.as_str(), whole.len() as u64),
        "object completed from a copied part"
    );
    let got = read(store, &key, 0..u64::MAX, Some(&meta.version)).await;
    assert!(
        got == whole,
        "the object is not the copied range followed by the uploaded part ({} bytes read)",
        got.len()
    );
    let edge = (MIN_PART_BYTES - 10) as u64..(MIN_PART_BYTES + 10) as u64;
    let want = whole.slice(MIN_PART_BYTES - 10..MIN_PART_BYTES + 10);
    assert!(
        read(store, &key, edge, None).await == want,
        "bytes around the part boundary"
    );
    cleanup(store, &[src, key]).await;
}

/// A copy has the source's bytes, its own version, and does not follow later writes to the source.
pub async fn copy(store: &dyn UnderStore) {
    let root = scratch("copy");
    let (src, dst) = (format!("{root}source"), format!("{root}deeper/copy"));
    let data = pattern(5, 70_000);
    put(store, &src, &data).await;
    let meta = ok("copy", store.copy(&src, &dst).await);
    assert_eq!(
        (meta.path.as_str(), meta.size),
        (dst.as_str(), data.len() as u64),
        "metadata of the copy"
    );
    assert_eq!(
        ok("stat the copy", store.stat(&dst).await).version,
        meta.version,
        "version of the copy"
    );
    assert!(
        read(store, &dst, 0..u64::MAX, Some(&meta.version)).await == data,
        "bytes of the copy"
    );
    put(store, &src, &pattern(6, 100)).await;
    assert!(
        read(store, &dst, 0..u64::MAX, None).await == data,
        "the copy changed with its source"
    );
    assert_not_found(
        "copy of a missing key",
        store.copy(&format!("{root}missing"), &format!("{root}x")).await,
    );
    cleanup(store, &[src, dst]).await;
}

/// User metadata: kept by put, multipart and copy, replaced by a copy with new metadata (onto
/// the object itself too), returned by stat, absent from listings; bad keys are refused.
pub async fn user_metadata(store: &dyn UnderStore) {
    let root = scratch("metadata");
    let md = |pairs: &[(&str, &str)]| -> Metadata {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };
    let (a, b, c) = (format!("{root}a"), format!("{root}b"), format!("{root}c"));
    let first = md(&[("mode", "33188"), ("uid", "1000"), ("mtime", "1700000000.5")]);
    let data = pattern(11, 3000);
    let put_meta = ok("put_with", store.put_with(&a, data.clone(), &first).await);
    assert_eq!(
        put_meta.metadata.as_ref(),
        Some(&first),
        "put_with returns the metadata it stored"
    );
    assert_eq!(
        ok("stat", store.stat(&a).await).metadata,
        Some(first.clone()),
        "stat after put_with"
    );
    let plain = format!("{root}plain");
    put(store, &plain, &data).await;
    assert_eq!(
        ok("stat", store.stat(&plain).await).metadata,
        Some(Metadata::new()),
        "a plain put has none"
    );

    ok("copy", store.copy(&a, &b).await);
    assert_eq!(
        ok("stat copy", store.stat(&b).await).metadata,
        Some(first.clone()),
        "a copy keeps the metadata"
    );
    let second = md(&[("mode", "41471")]);
    ok("copy_with", store.copy_with(&a, &c, Some(&second)).await);
    assert_eq!(
        ok("stat", store.stat(&c).await).metadata,
        Some(second.clone()),
        "copy_with replaces it"
    );
    ok("copy onto itself", store.copy_with(&a, &a, Some(&second)).await);
    let after = ok("stat", store.stat(&a).await);
    assert_eq!(after.metadata, Some(second.clone()), "new metadata in place");
    assert!(
        read(store, &a, 0..u64::MAX, Some(&after.version)).await == data,
        "bytes kept in place"
    );

    let big = format!("{root}multi");
    let upload = ok("create_multipart_with", store.create_multipart_with(&big, &first).await);
    let part = ok("upload_part", store.upload_part(&big, &upload, 1, data.clone()).await);
    ok("complete", store.complete_multipart(&big, &upload, vec![part]).await);
    assert_eq!(
        ok("stat", store.stat(&big).await).metadata,
        Some(first.clone()),
        "multipart keeps it"
    );

    let page = list_all(
        store,
        &ListRequest {
            prefix: root.clone(),
            ..Default::default()
        },
    )
    .await;
    for o in &page.objects {
        if let Some(listed) = &o.metadata {
            let stat = ok("stat", store.stat(&o.path).await).metadata;
            assert_eq!(
                Some(listed),
                stat.as_ref(),
                "a listing that carries metadata carries the object's"
            );
        }
    }
    let bad = md(&[("Bad Key", "1")]);
    assert!(
        matches!(
            store.put_with(&format!("{root}bad"), data.clone(), &bad).await,
            Err(UfsError::Invalid { .. })
        ),
        "a bad metadata key is refused"
    );
    cleanup(store, &[a, b, c, plain, big]).await;
}

/// A deleted object is gone from stat, reads and listings; deleting it again succeeds.
pub async fn delete(store: &dyn UnderStore) {
    let root = scratch("delete");
    let (deep, top) = (format!("{root}dir/sub/object"), format!("{root}top"));
    put(store, &deep, &pattern(1, 10)).await;
    put(store, &top, &pattern(2, 10)).await;
    ok("delete", store.delete(&deep).await);
    assert_not_found("stat after delete", store.stat(&deep).await);
    assert_not_found("read after delete", store.read_range(&deep, 0..10, None).await);
    ok("delete of a deleted key", store.delete(&deep).await);
    ok(
        "delete of a never-written key",
        store.delete(&format!("{root}never")).await,
    );
    let listed = list_all(store, &list_req(&root, Some("/"), 0)).await;
    assert_eq!(keys_of(&listed), [&top], "objects after delete");
    assert!(
        listed.common_prefixes.is_empty(),
        "a deleted object's prefix still lists: {:?}",
        listed.common_prefixes
    );
    ok("delete", store.delete(&top).await);
    assert_eq!(
        list_all(store, &list_req(&root, None, 0)).await,
        ListPage::default(),
        "listing after deletes"
    );
}

/// Directory markers (see [`UnderStore`]): an empty object `d/` has size 0 and reads empty; under
/// delimiter `/` it lists as its parent's common prefix, and as an object when listed by its own
/// prefix; without delimiter it lists as an object. Deleting it removes all of this.
pub async fn directory_markers(store: &dyn UnderStore) {
    let root = scratch("directory-markers");
    let (marker, nested, object) = (format!("{root}d/"), format!("{root}e/f/"), format!("{root}object"));
    let meta = put(store, &marker, &Bytes::new()).await;
    put(store, &nested, &Bytes::new()).await;
    put(store, &object, &pattern(1, 10)).await;
    let stat = ok(&format!("stat {marker}"), store.stat(&marker).await);
    assert_eq!(
        (stat.size, &stat.version),
        (0, &meta.version),
        "stat of the marker {marker}"
    );
    assert!(
        read(store, &marker, 0..10, Some(&meta.version)).await.is_empty(),
        "a marker reads empty"
    );
    let top = list_all(store, &list_req(&root, Some("/"), 0)).await;
    assert_eq!(keys_of(&top), [&object], "objects beside markers");
    assert_eq!(
        top.common_prefixes,
        [format!("{root}d/"), format!("{root}e/")],
        "markers under a delimiter are common prefixes"
    );
    let flat = list_all(store, &list_req(&root, None, 0)).await;
    assert_eq!(keys_of(&flat), [&marker, &nested, &object], "markers without delimiter");
    let sizes: Vec<u64> = flat.objects.iter().map(|o| o.size).collect();
    assert_eq!(sizes, [0, 0, 10], "sizes of markers and object");
    let own = list_all(store, &list_req(&marker, Some("/"), 0)).await;
    assert_eq!(keys_of(&own), [&marker], "a marker listed by its own prefix");
    assert!(own.common_prefixes.is_empty(), "{:?}", own.common_prefixes);
    let parent = list_all(store, &list_req(&format!("{root}e/"), Some("/"), 0)).await;
    assert!(
        parent.objects.is_empty(),
        "objects under {root}e/: {:?}",
        parent.objects
    );
    assert_eq!(
        parent.common_prefixes,
        [nested.as_str()],
        "a nested marker under its parent"
    );
    for key in [&marker, &nested] {
        ok(&format!("delete {key}"), store.delete(key).await);
        assert_not_found("stat of a deleted marker", store.stat(key).await);
        ok("delete of a deleted marker", store.delete(key).await);
    }
    let after = list_all(store, &list_req(&root, Some("/"), 0)).await;
    assert_eq!(keys_of(&after), [&object], "objects after deleting the markers");
    assert!(
        after.common_prefixes.is_empty(),
        "a deleted marker still lists: {:?}",
        after.common_prefixes
    );
    cleanup(store, &[object]).await;
}
