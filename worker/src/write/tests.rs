//! The write path against a real local under-store directory and a real journal directory.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytesize::ByteSize;
use hoard_transport::cluster::{MountEntry, WriteMode};
use hoard_transport::wire::Status;
use hoard_ufs::{LocalUnderStore, UnderStore};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::metadata::MetadataCache;

struct Fixture {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    pages: Arc<MemoryPageStore>,
    journal_dir: std::path::PathBuf,
    store: Arc<LocalUnderStore>,
    mode: WriteMode,
    write: Arc<WritePath>,
    stop: CancellationToken,
}

fn open(journal_dir: &Path, store: &Arc<LocalUnderStore>, mode: WriteMode) -> Arc<WritePath> {
    let mount = MountEntry {
        name: "m".into(),
        ufs: "file:///unused".into(),
        write_mode: mode,
        cache_only_capacity: ByteSize::kib(64),
        anonymous: Default::default(),
    };
    let ufs: Arc<dyn UnderStore> = store.clone();
    WritePath::open(
        journal_dir,
        &[(mount, ufs, true)],
        Arc::new(MetadataCache::new(Duration::from_secs(5), 1000)),
        WriteConfig {
            part_size: 5 << 20,
            upload_concurrency: 4,
            upload_retry_max: Duration::from_millis(200),
            written_entries: 100,
            session_idle_timeout: Duration::from_secs(60),
        },
    )
    .expect("open the write path")
}

/// A listing of `prefix` grouped by `/`, as the client asks for a directory.
fn dir_listing(prefix: &str) -> hoard_transport::wire::ListRequest {
    hoard_transport::wire::ListRequest {
        mount: "m".into(),
        prefix: prefix.into(),
        delimiter: Some("/".into()),
        continuation: None,
        max_keys: 0,
        markers: false,
    }
}

impl Fixture {
    fn new(mode: WriteMode) -> Fixture {
        let (data, journal) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
        let store = Arc::new(LocalUnderStore::new(data.path()).expect("store"));
        let journal_dir = journal.path().to_owned();
        let pages = Arc::new(
            MemoryPageStore::new(64 << 20, 1 << 20, false, crate::eviction::from_kind(Default::default()))
                .expect("memory tier"),
        );
        let write = open(&journal_dir, &store, mode).cache_pages_in(pages.clone(), 1 << 20);
        let stop = CancellationToken::new();
        write.start(stop.clone());
        Fixture {
            _dirs: (data, journal),
            pages,
            journal_dir,
            store,
            mode,
            write,
            stop,
        }
    }

    /// Stop this write path (as if the process died) and open the journal again.
    fn restart(&mut self) {
        self.stop.cancel();
        self.write = open(&self.journal_dir, &self.store, self.mode);
        self.stop = CancellationToken::new();
        self.write.start(self.stop.clone());
    }

    async fn put(&self, path: &str, data: &[u8]) -> WriteResult<Option<FileMeta>> {
        let (h, _) = self
            .write
            .open_session("m", path, false, false, Default::default())
            .await?;
        self.write.write(h, 0, Bytes::copy_from_slice(data)).await?;
        self.write.publish(h, data.len() as u64, true, Vec::new()).await
    }

    async fn append(&self, path: &str, data: &[u8]) -> WriteResult<Option<FileMeta>> {
        let (h, _) = self
            .write
            .open_session("m", path, true, false, Default::default())
            .await?;
        self.write.write(h, 0, Bytes::copy_from_slice(data)).await?;
        self.write.publish(h, data.len() as u64, true, Vec::new()).await
    }

    /// The file's bytes as hoard serves them.
    async fn read(&self, path: &str) -> Vec<u8> {
        let meta = self.write.stat("m", path).expect("in the overlay").expect("a file");
        let bytes = match self.write.read("m", path, &meta.version, 0, meta.size).await {
            Ok(b) => b,
            Err(e) => {
                let entry = self.write.mounts["m"].ns.lock().get(path).cloned();
                let now = self.store.stat(path).await;
                panic!("read {path}: {e:?}; entry {entry:?}; store {now:?}");
            }
        };
        assert_eq!(bytes.len() as u64, meta.size);
        bytes.to_vec()
    }

    async fn sync(&self) {
        for _ in 0..100 {
            if self.write.sync("m", "").await.is_ok() {
                return;
            }
        }
        panic!("the write path never became clean");
    }
}

async fn ufs_bytes(store: &LocalUnderStore, path: &str) -> Option<Vec<u8>> {
    store.read_range(path, 0..u64::MAX, None).await.ok().map(|b| b.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_mode_acknowledges_then_persists_in_the_background() {
    let f = Fixture::new(WriteMode::Back);
    let meta = f.put("a/b.bin", b"hello world").await.expect("put").expect("meta");
    assert_eq!((meta.size, meta.homed), (11, true));
    assert!(meta.version.starts_with("hoard:"));
    assert_eq!(f.read("a/b.bin").await, b"hello world");
    f.sync().await;
    assert_eq!(
        ufs_bytes(&f.store, "a/b.bin").await.as_deref(),
        Some(&b"hello world"[..])
    );
    // Still homed with the same version after persisting: readers keep their version.
    let after = f.write.stat("m", "a/b.bin").expect("kept").expect("file");
    assert_eq!(after.version, meta.version);
    assert_eq!(f.read("a/b.bin").await, b"hello world");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_restart_and_persist_after_it() {
    let mut f = Fixture::new(WriteMode::Back);
    // The persister must not run before the "crash": a store that is not there yet would do,
    // but simply stopping it works too.
    f.stop.cancel();
    f.write = open(&f.journal_dir, &f.store, WriteMode::Back);
    f.put("x", b"one").await.expect("put");
    f.append("x", b"-two").await.expect("append");
    f.put("dir/y", b"why").await.expect("put");
    f.write.rename("m", "dir", "moved").await.expect("rename");
    // An unfinished session: never acknowledged, must not appear.
    let (h, _) = f
        .write
        .open_session("m", "partial", false, false, Default::default())
        .await
        .expect("open");
    f.write.write(h, 0, Bytes::from_static(b"lost")).await.expect("write");
    assert!(
        ufs_bytes(&f.store, "x").await.is_none(),
        "nothing persisted before the restart"
    );
    f.restart();
    assert_eq!(f.read("x").await, b"one-two");
    assert_eq!(f.read("moved/y").await, b"why");
    assert!(f.write.stat("m", "partial").is_none());
    f.sync().await;
    assert_eq!(ufs_bytes(&f.store, "x").await.as_deref(), Some(&b"one-two"[..]));
    assert_eq!(ufs_bytes(&f.store, "moved/y").await.as_deref(), Some(&b"why"[..]));
    assert!(ufs_bytes(&f.store, "dir/y").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_keep_their_order_and_coalesce_into_one_blob() {
    let f = Fixture::new(WriteMode::Back);
    f.store.put("log", Bytes::from_static(b"old|")).await.expect("seed");
    let mut expected = b"old|".to_vec();
    for i in 0..50 {
        let record = format!("record {i}|");
        f.append("log", record.as_bytes()).await.expect("append");
        expected.extend_from_slice(record.as_bytes());
    }
    assert_eq!(f.read("log").await, expected);
    let segments = {
        let m = &f.write.mounts["m"];
        let ns = m.ns.lock();
        ns.get("log").and_then(Entry::file).map(|f| f.segments.len())
    };
    assert!(
        segments.is_some_and(|n| n <= 3),
        "small appends coalesce: {segments:?} segments"
    );
    f.sync().await;
    assert_eq!(ufs_bytes(&f.store, "log").await, Some(expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_and_deletes_follow_posix_rules() {
    let f = Fixture::new(WriteMode::Back);
    for i in 0..20 {
        f.store
            .put(&format!("src/f{i}"), Bytes::from(format!("file {i}")))
            .await
            .expect("seed");
    }
    f.put("src/new", b"new").await.expect("put");
    f.put("other", b"o").await.expect("put");
    let e = f.write.rename("m", "src", "other").await.expect_err("dir over file");
    assert_eq!(e.status, Status::NotADirectory);
    let e = f.write.delete("m", "src", false).await.expect_err("non-empty");
    assert_eq!(e.status, Status::NotEmpty);
    f.write.rename("m", "src", "dst").await.expect("rename");
    assert!(
        f.write
            .list(&dir_listing("src/"), 100)
            .await
            .is_some_and(|l| l.expect("list").entries.is_empty())
    );
    let listed = f
        .write
        .list(&dir_listing("dst/"), 1000)
        .await
        .expect("overlay")
        .expect("list");
    assert_eq!(listed.entries.len(), 21);
    assert_eq!(f.read("dst/f7").await, b"file 7");
    let e = f.write.rename("m", "nothing", "x").await.expect_err("missing");
    assert_eq!(e.status, Status::NotFound);
    f.write.mkdir("m", "empty").await.expect("mkdir");
    let root = f
        .write
        .list(&dir_listing(""), 1000)
        .await
        .expect("overlay")
        .expect("list");
    let names: Vec<String> = root
        .entries
        .iter()
        .map(|e| match e {
            ListEntry::File(f) => f.path.clone(),
            ListEntry::Prefix(p) => p.clone(),
        })
        .collect();
    assert_eq!(names, vec!["dst/", "empty/", "other"]);
    // An empty directory's own listing holds its marker, as a plain under-store listing does
    // (the store's own listing answers once the marker is persisted): it is not empty.
    let own = f
        .write
        .list(&dir_listing("empty/"), 1000)
        .await
        .expect("overlay")
        .expect("list");
    assert!(
        matches!(&own.entries[..], [ListEntry::File(m)] if m.path == "empty/" && m.size == 0),
        "{:?}",
        own.entries
    );
    f.write.delete("m", "empty", false).await.expect("empty dir");
    f.sync().await;
    assert!(ufs_bytes(&f.store, "src/f3").await.is_none());
    assert_eq!(ufs_bytes(&f.store, "dst/f3").await.as_deref(), Some(&b"file 3"[..]));
    assert_eq!(ufs_bytes(&f.store, "dst/new").await.as_deref(), Some(&b"new"[..]));
    f.write.delete("m", "dst", true).await.expect("recursive");
    f.sync().await;
    assert!(ufs_bytes(&f.store, "dst/f3").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_create_refuses_an_existing_path() {
    let f = Fixture::new(WriteMode::Back);
    f.put("p", b"1").await.expect("put");
    let e = f
        .write
        .open_session("m", "p", false, true, Default::default())
        .await
        .expect_err("exists");
    assert_eq!(e.status, Status::AlreadyExists);
    f.write
        .open_session("m", "q", false, true, Default::default())
        .await
        .expect("a new path");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_only_data_stays_local_within_its_capacity() {
    let f = Fixture::new(WriteMode::CacheOnly);
    f.put("a", &[1u8; 40 << 10]).await.expect("fits");
    let e = f
        .put("b", &[2u8; 40 << 10])
        .await
        .expect_err("over the 64 KiB capacity");
    assert_eq!(e.status, Status::NoSpace);
    assert!(e.message.contains("capacity"), "{}", e.message);
    f.write.delete("m", "a", false).await.expect("delete");
    f.put("b", &[2u8; 40 << 10]).await.expect("room again");
    f.sync().await;
    assert!(
        ufs_bytes(&f.store, "b").await.is_none(),
        "cache-only data never reaches the store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_mode_acknowledges_once_the_store_has_it() {
    let f = Fixture::new(WriteMode::Through);
    let big: Vec<u8> = (0..12u32 << 20).map(|i| (i % 251) as u8).collect();
    let (h, _) = f
        .write
        .open_session("m", "big", false, false, Default::default())
        .await
        .expect("open");
    for (i, piece) in big.chunks(1 << 20).enumerate() {
        f.write
            .write(h, (i << 20) as u64, Bytes::copy_from_slice(piece))
            .await
            .expect("write");
    }
    let meta = f
        .write
        .publish(h, big.len() as u64, true, Vec::new())
        .await
        .expect("commit")
        .expect("meta");
    assert_eq!(meta.size, big.len() as u64);
    assert_eq!(
        ufs_bytes(&f.store, "big").await,
        Some(big.clone()),
        "in the store when close returns"
    );
    assert_eq!(f.pages.len(), 12, "and its pages in the cache");
    f.append("big", b"tail").await.expect("append");
    let mut expected = big;
    expected.extend_from_slice(b"tail");
    assert_eq!(ufs_bytes(&f.store, "big").await, Some(expected));
    f.write.rename("m", "big", "renamed").await.expect("rename");
    assert!(
        ufs_bytes(&f.store, "big").await.is_none(),
        "through: the store caught up before the rename returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let f = Fixture::new(WriteMode::Back);
    let e = f
        .write
        .open_session("nope", "x", false, false, Default::default())
        .await
        .expect_err("no mount");
    assert_eq!(e.status, Status::InvalidArgument);
    let e = f
        .write
        .open_session("m", "a//b", false, false, Default::default())
        .await
        .expect_err("bad path");
    assert_eq!(e.status, Status::InvalidArgument);
    let e = f
        .write
        .write(12345, 0, Bytes::from_static(b"x"))
        .await
        .expect_err("no session");
    assert_eq!(e.status, Status::NoSuchSession);
    let (h, _) = f
        .write
        .open_session("m", "gap", false, false, Default::default())
        .await
        .expect("open");
    f.write
        .write(h, 10, Bytes::from_static(b"x"))
        .await
        .expect("write at 10");
    let e = f
        .write
        .publish(h, 11, true, Vec::new())
        .await
        .expect_err("bytes 0..10 missing");
    assert_eq!(e.status, Status::InvalidArgument);
    assert!(f.write.stat("m", "gap").is_none(), "nothing published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_left_open_by_a_crash_is_aborted_on_restart() {
    let mut f = Fixture::new(WriteMode::Back);
    let upload_id = f.store.create_multipart("big").await.expect("create");
    f.write.log_upload("m", "big", &upload_id, true);
    f.restart();
    for _ in 0..100 {
        if f.write.stale_uploads.lock().is_empty() && !f.write.aborting_stale.load(Ordering::Acquire) {
            break;
        }
        if f.store
            .upload_part("big", &upload_id, 1, Bytes::from_static(b"x"))
            .await
            .is_err()
        {
            return; // aborted: the upload is gone
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        f.store
            .upload_part("big", &upload_id, 1, Bytes::from_static(b"x"))
            .await
            .is_err(),
        "the upload left open must be aborted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persisted_file_changed_behind_hoards_back_is_forgotten() {
    let f = Fixture::new(WriteMode::Back);
    let meta = f.put("p", b"from hoard").await.expect("put").expect("meta");
    f.sync().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    f.store
        .put("p", Bytes::from_static(b"changed directly"))
        .await
        .expect("direct put");
    let e = f
        .write
        .read("m", "p", &meta.version, 0, meta.size)
        .await
        .expect_err("the old object is gone");
    assert!(matches!(e, UfsError::VersionMismatch { .. }), "{e:?}");
    assert!(
        f.write.stat("m", "p").is_none(),
        "the overlay forgot it: the store's version shows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_cannot_be_written_over_a_directory() {
    let f = Fixture::new(WriteMode::Back);
    f.put("d/x", b"x").await.expect("put");
    let e = f.put("d", b"over the dir").await.expect_err("d is a directory");
    assert_eq!(e.status, Status::NotADirectory);
    f.store.put("u/y", Bytes::from_static(b"y")).await.expect("seed");
    let e = f.put("u", b"over a store dir").await.expect_err("u is a directory");
    assert_eq!(e.status, Status::NotADirectory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_two_files_by_renames_persists_without_deadlock() {
    let mut f = Fixture::new(WriteMode::Back);
    // Hold the persister back so all three renames are pending together.
    f.stop.cancel();
    f.write = open(&f.journal_dir, &f.store, WriteMode::Back);
    f.store.put("a", Bytes::from_static(b"AAAA")).await.expect("seed");
    f.store.put("b", Bytes::from_static(b"BB")).await.expect("seed");
    f.write.rename("m", "a", "t").await.expect("mv a t");
    f.write.rename("m", "b", "a").await.expect("mv b a");
    f.write.rename("m", "t", "b").await.expect("mv t b");
    assert_eq!(f.read("a").await, b"BB");
    assert_eq!(f.read("b").await, b"AAAA");
    f.stop = CancellationToken::new();
    f.write.start(f.stop.clone());
    f.sync().await;
    assert_eq!(ufs_bytes(&f.store, "a").await.as_deref(), Some(&b"BB"[..]));
    assert_eq!(ufs_bytes(&f.store, "b").await.as_deref(), Some(&b"AAAA"[..]));
    assert!(ufs_bytes(&f.store, "t").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_renamed_away_and_back_persists() {
    let f = Fixture::new(WriteMode::Back);
    f.store.put("x", Bytes::from_static(b"xx")).await.expect("seed");
    f.write.rename("m", "x", "y").await.expect("mv x y");
    f.write.rename("m", "y", "x").await.expect("mv y x");
    f.sync().await;
    assert_eq!(ufs_bytes(&f.store, "x").await.as_deref(), Some(&b"xx"[..]));
    assert!(ufs_bytes(&f.store, "y").await.is_none());
}

fn md(pairs: &[(&str, &str)]) -> Metadata {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

async fn ufs_metadata(store: &LocalUnderStore, path: &str) -> Metadata {
    store
        .stat(path)
        .await
        .expect("in the store")
        .metadata
        .expect("stat returns metadata")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_kept_through_appends_renames_and_changes_in_both_modes() {
    for mode in [WriteMode::Back, WriteMode::Through] {
        let f = Fixture::new(mode);
        let first = md(&[("mode", "33261"), ("uid", "7")]);
        let (h, _) = f
            .write
            .open_session("m", "f", false, false, first.clone())
            .await
            .expect("open");
        f.write.write(h, 0, Bytes::from_static(b"abc")).await.expect("write");
        let meta = f
            .write
            .publish(h, 3, true, Vec::new())
            .await
            .expect("commit")
            .expect("meta");
        assert_eq!(
            meta.metadata,
            Some(metadata_vec(&first)),
            "{mode:?}: the commit answers it"
        );
        f.sync().await;
        assert_eq!(
            ufs_metadata(&f.store, "f").await,
            first,
            "{mode:?}: persisted with the object"
        );

        // An append keeps it, a rename carries it.
        f.append("f", b"def").await.expect("append");
        f.write.rename("m", "f", "g").await.expect("rename");
        f.sync().await;
        assert_eq!(ufs_bytes(&f.store, "g").await.as_deref(), Some(&b"abcdef"[..]));
        assert_eq!(
            ufs_metadata(&f.store, "g").await,
            first,
            "{mode:?}: after append and rename"
        );

        // A change of an object that is only in the under-store: copied onto itself.
        f.store
            .put("plain", Bytes::from_static(b"outside"))
            .await
            .expect("seed");
        let second = md(&[("mode", "41471")]);
        let changed = f.write.set_metadata("m", "plain", second.clone()).await.expect("set");
        assert_eq!(changed.metadata, Some(metadata_vec(&second)));
        assert_eq!(
            f.write.stat("m", "plain").expect("overlay").expect("file").metadata,
            Some(metadata_vec(&second)),
            "{mode:?}: stat sees the change at once"
        );
        f.sync().await;
        assert_eq!(ufs_metadata(&f.store, "plain").await, second, "{mode:?}");
        assert_eq!(ufs_bytes(&f.store, "plain").await.as_deref(), Some(&b"outside"[..]));
        assert_eq!(f.read("plain").await, b"outside");

        let e = f
            .write
            .set_metadata("m", "missing", second.clone())
            .await
            .expect_err("no file");
        assert_eq!(e.status, Status::NotFound);
        let e = f
            .write
            .set_metadata("m", "g", md(&[("Bad Key", "x")]))
            .await
            .expect_err("bad key");
        assert_eq!(e.status, Status::InvalidArgument, "{}", e.message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_survives_a_restart_before_the_upload() {
    let mut f = Fixture::new(WriteMode::Back);
    f.store.put("u", Bytes::from_static(b"u")).await.expect("seed");
    let m = md(&[("mtime", "1700000000")]);
    f.write.set_metadata("m", "u", m.clone()).await.expect("set");
    let (h, _) = f
        .write
        .open_session("m", "n", false, false, m.clone())
        .await
        .expect("open");
    f.write.write(h, 0, Bytes::from_static(b"new")).await.expect("write");
    f.write.publish(h, 3, true, Vec::new()).await.expect("commit");
    f.restart();
    f.sync().await;
    assert_eq!(ufs_metadata(&f.store, "u").await, m);
    assert_eq!(ufs_metadata(&f.store, "n").await, m);
}

mod compose;
