//! End to end: writes through hoard to real `hoard worker` processes, over a real Garage S3
//! server where S3 matters and a local directory where it does not (renames of 10,000 files,
//! capacity limits). Every test checks what reached the under-store, byte for byte.
//!
//! The checkpoint test (`a_checkpoint_survives_a_sigkill_of_its_coordinator`) moves 2 GiB and
//! runs alone in its nextest group (see `.config/nextest.toml`).

use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hoard_client::{Client, ClientError, CreateOptions, ListEntry};
use hoard_tests::cluster::{Cluster, Mount};
use hoard_tests::garage::Garage;
use hoard_tests::pattern;
use hoard_transport::wire::Status;
use hoard_ufs::{ListItem, ListRequest, UnderStore};

const MIB: usize = 1 << 20;

/// The `[s3]` table body that reaches `garage`.
fn s3_section(garage: &Garage) -> String {
    format!(
        "endpoint = \"{}\"\nregion = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
        garage.endpoint, garage.region, garage.access_key, garage.secret_key
    )
}

/// An empty local directory to mount, and its `file://` URI.
fn local_dir() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = format!("file://{}", dir.path().display());
    (dir, uri)
}

/// `fut`, or a panic naming `what` when it takes longer than `limit`.
async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// The worker status of a client error, if it is a worker's refusal.
fn status_of(e: &ClientError) -> Option<Status> {
    match e {
        ClientError::Worker { status, .. } => Some(*status),
        _ => None,
    }
}

/// Every key under `prefix` in an under-store.
async fn keys_under(store: &dyn UnderStore, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut continuation = None;
    loop {
        let page = store
            .list(&ListRequest {
                prefix: prefix.to_owned(),
                delimiter: None,
                continuation,
                max_keys: 1000,
            })
            .await
            .expect("list the under-store");
        continuation = page.next_continuation.clone();
        keys.extend(page.into_items().iter().map(ListItem::key).map(str::to_owned));
        if continuation.is_none() {
            return keys;
        }
    }
}

/// Files (recursively) under a local directory, as paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("under dir");
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The file paths of a listing.
fn file_names(entries: &[ListEntry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| match e {
            ListEntry::File(f) => Some(f.path.clone()),
            ListEntry::Prefix(_) => None,
        })
        .collect()
}

// ---- a. through --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_through_write_streams_a_multipart_upload_and_is_in_s3_at_close() {
    let garage = Garage::start().await.expect("start garage");
    let mount = Mount::new("s3", &garage.uri("e2e")).write_mode("through");
    let toml = "[worker]\npart_size = \"5MiB\"\n";
    let cluster = Cluster::start_with(2, &[mount], Some(s3_section(&garage)), toml, None).expect("start workers");
    let client = cluster.client();
    let store = garage.under_store("e2e").await.expect("s3 store");
    let want = pattern(1, 20 * MIB);

    let mut writer = client
        .create("/s3/dir/big.bin", CreateOptions::default())
        .await
        .expect("create");
    for piece in want.chunks(MIB) {
        writer.write(piece).await.expect("write 1 MiB");
    }
    // The writer has sent 16 MiB (it buffers up to 8 MiB): the worker uploads the first three
    // 5 MiB parts while the file is still open (Garage logs every request).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !garage.log_tail(100).contains("big.bin?x-id=UploadPart&partNumber=3&") {
        assert!(
            Instant::now() < deadline,
            "no part was uploaded while writing; Garage's log:\n{}",
            garage.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // S3 has no partial objects: nothing is there before the close.
    let before = store.stat("dir/big.bin").await.expect_err("no object before close");
    assert!(before.is_not_found(), "{before:?}");
    let meta = writer.close().await.expect("close");
    assert_eq!(meta.size, want.len() as u64);

    let in_s3 = store.stat("dir/big.bin").await.expect("the object is in S3 at close");
    assert_eq!(in_s3.size, want.len() as u64);
    // A multipart ETag ends with the part count: 20 MiB in 5 MiB parts.
    assert!(
        in_s3.version.ends_with("-4"),
        "expected a 4-part multipart upload, ETag {}",
        in_s3.version
    );
    let bytes = store
        .read_range("dir/big.bin", 0..u64::MAX, None)
        .await
        .expect("read from garage");
    assert!(bytes[..] == want[..], "the object in S3 differs from what was written");

    assert_eq!(
        client.stat("/s3/dir/big.bin").await.expect("stat").size,
        want.len() as u64
    );
    let back = client.read_all("/s3/dir/big.bin").await.expect("read through hoard");
    assert!(back[..] == want[..], "hoard returned other bytes");
    cluster.assert_clean_logs();
}

// ---- b. checkpoint with SIGKILL -----------------------------------------------------------

/// Shards of the checkpoint, as in the issue: 8 × 256 MiB = 2 GiB.
const SHARDS: usize = 8;
const SHARD_BYTES: usize = 256 * MIB;
/// Writers write (and the checks compare) 8 MiB at a time.
const PIECE: usize = 8 * MIB;

/// Piece `piece` of shard `shard`: the shard's base block with the first 8 bytes of every 4 KiB
/// stamped with (shard, piece, block), so that every 4 KiB of the checkpoint is distinct and a
/// misplaced one shows, while only 8 base blocks are ever generated.
fn shard_piece(base: &[u8], shard: usize, piece: usize) -> Vec<u8> {
    let mut out = base.to_vec();
    for (block, chunk) in out.chunks_mut(4096).enumerate() {
        let stamp = ((shard as u64) << 48) | ((piece as u64) << 24) | block as u64;
        chunk[..8].copy_from_slice(&stamp.to_le_bytes());
    }
    out
}

/// Write one shard in 8 MiB pieces.
async fn write_shard(client: Client, bases: Arc<Vec<Vec<u8>>>, shard: usize) -> hoard_client::FileMeta {
    let path = format!("/ckpt/tmp-step-100/shard-{shard}.bin");
    let mut writer = client
        .create(&path, CreateOptions::default())
        .await
        .expect("create a shard");
    for piece in 0..SHARD_BYTES / PIECE {
        let bytes = Bytes::from(shard_piece(&bases[shard], shard, piece));
        writer.write_bytes(bytes).await.expect("write a shard piece");
    }
    writer.close().await.expect("close a shard")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_survives_a_sigkill_of_its_coordinator() {
    let started = Instant::now();
    let garage = Garage::start().await.expect("start garage");
    let mount = Mount::new("ckpt", &garage.uri("ckpt")).write_mode("back");
    // One upload at a time: the 2 GiB backlog takes long enough to kill the coordinator mid-way.
    let toml = "[worker]\npart_size = \"5MiB\"\nupload_concurrency = 1\nupload_retry_max = \"1s\"\n";
    let mut cluster = Cluster::start_with(2, &[mount], Some(s3_section(&garage)), toml, None).expect("start workers");
    let coordinator = cluster.config.coordinator_of("ckpt").expect("a coordinator");
    let client = cluster.client();
    let bases: Arc<Vec<Vec<u8>>> = Arc::new((0..SHARDS).map(|i| pattern(100 + i as u64, PIECE)).collect());

    let writers: Vec<_> = (0..SHARDS)
        .map(|i| tokio::spawn(write_shard(client.clone(), bases.clone(), i)))
        .collect();
    let meta_json = Bytes::from_static(b"{\"step\": 100, \"shards\": 8}\n");
    client
        .put("/ckpt/tmp-step-100/meta.json", meta_json.clone())
        .await
        .expect("put the metadata file");
    for w in writers {
        let meta = w.await.expect("join a writer");
        assert_eq!(meta.size, SHARD_BYTES as u64);
    }
    let written = started.elapsed();
    let t = Instant::now();
    client
        .rename("/ckpt/tmp-step-100", "/ckpt/step-100")
        .await
        .expect("rename the checkpoint");
    eprintln!(
        "checkpoint: 2 GiB acknowledged after {written:?}, rename took {:?}",
        t.elapsed()
    );
    let listed = file_names(&client.list("/ckpt/step-100", true).await.expect("list"));
    assert_eq!(listed.len(), SHARDS + 1, "{listed:?}");
    let old = client
        .list("/ckpt/tmp-step-100", true)
        .await
        .expect("list the old name");
    assert!(old.is_empty(), "the old name still lists {old:?}");

    // Kill in the middle of a shard's upload: once Garage has logged a part of one.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !garage
        .log_tail(200)
        .lines()
        .any(|l| l.contains("shard-") && l.contains("x-id=UploadPart&"))
    {
        assert!(Instant::now() < deadline, "no shard upload started within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = client.cluster_status().await;
    let coord_id = &cluster.workers[coordinator].id;
    let (_, coord_status) = status
        .iter()
        .find(|(id, _)| id == coord_id)
        .expect("the coordinator's status");
    let coord_status = coord_status.as_ref().expect("the coordinator answers");
    eprintln!(
        "checkpoint: backlog before the kill: {} ops, {} bytes",
        coord_status.backlog_ops, coord_status.backlog_bytes
    );
    assert!(
        coord_status.backlog_ops > 0 && coord_status.backlog_bytes > 0,
        "the upload finished before the kill: make it slower"
    );

    cluster.kill_worker(coordinator);
    cluster.start_worker(coordinator).expect("restart the coordinator");
    let t = Instant::now();
    within(Duration::from_secs(240), "sync after the restart", client.sync("/ckpt"))
        .await
        .expect("sync after the restart");
    eprintln!("checkpoint: sync after the restart took {:?}", t.elapsed());

    let store = garage.under_store("ckpt").await.expect("s3 store");
    let leftover = keys_under(&store, "tmp-step-100/").await;
    assert!(leftover.is_empty(), "left under tmp-step-100/: {leftover:?}");
    let mut keys = keys_under(&store, "step-100/").await;
    keys.sort();
    let mut want_keys: Vec<String> = (0..SHARDS).map(|i| format!("step-100/shard-{i}.bin")).collect();
    want_keys.push("step-100/meta.json".into());
    want_keys.sort();
    assert_eq!(keys, want_keys);
    let meta_in_s3 = store
        .read_range("step-100/meta.json", 0..u64::MAX, None)
        .await
        .expect("read meta.json");
    assert_eq!(meta_in_s3, meta_json);

    let t = Instant::now();
    for shard in 0..SHARDS {
        let key = format!("step-100/shard-{shard}.bin");
        assert_eq!(store.stat(&key).await.expect("stat a shard").size, SHARD_BYTES as u64);
        let file = client
            .open(&format!("/ckpt/{key}"))
            .await
            .expect("open a shard through hoard");
        assert_eq!(file.meta().size, SHARD_BYTES as u64);
        for piece in 0..SHARD_BYTES / PIECE {
            let want = shard_piece(&bases[shard], shard, piece);
            let at = (piece * PIECE) as u64;
            let got = store
                .read_range(&key, at..at + PIECE as u64, None)
                .await
                .expect("read a piece from garage");
            assert!(got[..] == want[..], "{key} differs in S3 at {at}");
            let got = file.read(at, PIECE as u64).await.expect("read a piece through hoard");
            assert!(got[..] == want[..], "{key} differs through hoard at {at}");
        }
    }
    eprintln!(
        "checkpoint: verified in {:?}; whole test {:?}",
        t.elapsed(),
        started.elapsed()
    );
}

// ---- c. append ----------------------------------------------------------------------------

/// Record `k` of appender `tag`: 100 bytes, self-describing, ending with a newline.
fn record(tag: char, k: usize) -> Vec<u8> {
    let mut r = format!("{tag}{k:05}|").into_bytes();
    let fill = pattern((tag as u64) << 32 | k as u64, 99 - r.len());
    r.extend(fill.iter().map(|b| b'a' + b % 26));
    r.push(b'\n');
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_are_visible_in_order_and_reach_the_store_as_one_object() {
    let (data, uri) = local_dir();
    let mount = Mount::new("local", &uri).write_mode("back");
    let cluster = Cluster::start_with(1, &[mount], None, "", None).expect("start worker");
    let client = cluster.client();
    let mut want = Vec::new();
    for k in 0..200 {
        let rec = record('a', k);
        let meta = client
            .append("/local/logs/events.log", Bytes::from(rec.clone()))
            .await
            .expect("append");
        want.extend_from_slice(&rec);
        assert_eq!(meta.size, want.len() as u64, "append {k}");
        if k % 25 == 24 {
            let got = client.read_all("/local/logs/events.log").await.expect("read back");
            assert!(got[..] == want[..], "after {} appends the file reads otherwise", k + 1);
        }
    }
    // Two appenders at once: every record whole, each appender's in its order.
    let appenders: Vec<_> = ['x', 'y']
        .into_iter()
        .map(|tag| {
            let client = client.clone();
            tokio::spawn(async move {
                for k in 0..50 {
                    client
                        .append("/local/logs/mixed.log", Bytes::from(record(tag, k)))
                        .await
                        .expect("concurrent append");
                }
            })
        })
        .collect();
    for a in appenders {
        a.await.expect("join an appender");
    }
    within(Duration::from_secs(60), "sync", client.sync("/local/logs"))
        .await
        .expect("sync");
    let on_disk = std::fs::read(data.path().join("logs/events.log")).expect("the file is in the directory");
    assert!(
        on_disk == want,
        "the stored file is not the concatenation of the appends"
    );
    let mixed = std::fs::read(data.path().join("logs/mixed.log")).expect("the mixed file");
    assert_eq!(mixed.len(), 100 * 100);
    let mut next = [0usize; 2];
    for rec in mixed.chunks(100) {
        let tag = if rec[0] == b'x' { 0 } else { 1 };
        assert!(
            rec == record(rec[0] as char, next[tag]).as_slice(),
            "a torn or out-of-order record: {:?}",
            String::from_utf8_lossy(rec)
        );
        next[tag] += 1;
    }
    cluster.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_to_a_big_s3_object_copies_the_old_bytes_server_side() {
    let garage = Garage::start().await.expect("start garage");
    let mount = Mount::new("s3", &garage.uri("e2e")).write_mode("back");
    let toml = "[worker]\npart_size = \"5MiB\"\n";
    let cluster = Cluster::start_with(1, &[mount], Some(s3_section(&garage)), toml, None).expect("start worker");
    let client = cluster.client();
    let store = garage.under_store("e2e").await.expect("s3 store");
    let old = pattern(21, 12 * MIB);
    let added = pattern(22, MIB);
    store
        .put("big/log.bin", Bytes::from(old.clone()))
        .await
        .expect("put the old object");

    let sent_before = cluster.worker_bytes_written(0).expect("the worker's /proc/PID/io");
    let meta = client
        .append("/s3/big/log.bin", Bytes::from(added.clone()))
        .await
        .expect("append");
    assert_eq!(meta.size, (13 * MIB) as u64);
    within(Duration::from_secs(60), "sync", client.sync("/s3/big/log.bin"))
        .await
        .expect("sync");
    let sent = cluster.worker_bytes_written(0).expect("the worker's /proc/PID/io") - sent_before;

    let want: Vec<u8> = old.iter().chain(&added).copied().collect();
    let in_s3 = store
        .read_range("big/log.bin", 0..u64::MAX, None)
        .await
        .expect("read from garage");
    assert!(
        in_s3[..] == want[..],
        "the object is not the old bytes then the appended ones"
    );
    // The journal blob (1 MiB) and its upload (1 MiB) are written; 12 MiB of old bytes sent
    // again would show.
    eprintln!("append: the worker wrote {sent} bytes to files and sockets");
    assert!(
        sent < (6 * MIB) as u64,
        "the worker wrote {sent} bytes for a 1 MiB append: were the old 12 MiB uploaded again?"
    );
    assert!(
        garage.log_tail(50).contains("big/log.bin?x-id=UploadPartCopy"),
        "Garage saw no server-side copy:\n{}",
        garage.log_tail(10)
    );
    let back = client.read_all("/s3/big/log.bin").await.expect("read through hoard");
    assert!(back[..] == want[..]);
    cluster.assert_clean_logs();
}

// ---- d. rename of a big directory ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_directory_of_10000_files_is_immediate_and_persists_later() {
    const FILES: usize = 10_000;
    let (data, uri) = local_dir();
    let src = data.path().join("run/data");
    std::fs::create_dir_all(&src).expect("mkdir");
    for i in 0..FILES {
        std::fs::write(src.join(format!("f{i:05}")), format!("file {i}\n")).expect("write a file");
    }
    let mount = Mount::new("local", &uri).write_mode("back");
    let cluster = Cluster::start_with(1, &[mount], None, "", None).expect("start worker");
    let client = cluster.client();

    let t = Instant::now();
    client
        .rename("/local/run/data", "/local/run/moved")
        .await
        .expect("rename");
    let took = t.elapsed();
    eprintln!("rename of {FILES} files took {took:?}");
    assert!(took < Duration::from_secs(5), "the rename took {took:?}");

    let t = Instant::now();
    let moved = file_names(&client.list("/local/run/moved", true).await.expect("list the new name"));
    eprintln!("listing {FILES} renamed files took {:?}", t.elapsed());
    assert_eq!(moved.len(), FILES);
    assert_eq!(moved[0], "run/moved/f00000");
    assert_eq!(moved[FILES - 1], format!("run/moved/f{:05}", FILES - 1));
    let old = client.list("/local/run/data", true).await.expect("list the old name");
    assert!(
        old.is_empty(),
        "the old name still lists {} entries: {:?}",
        old.len(),
        &old[..old.len().min(3)]
    );
    let got = client
        .read_all("/local/run/moved/f04321")
        .await
        .expect("read a renamed file");
    assert_eq!(&got[..], b"file 4321\n");
    let gone = client.stat("/local/run/data/f04321").await.expect_err("the old path");
    assert!(gone.is_not_found(), "{gone:?}");

    let t = Instant::now();
    within(
        Duration::from_secs(120),
        "sync of the rename",
        client.sync("/local/run"),
    )
    .await
    .expect("sync");
    eprintln!("persisting the rename took {:?}", t.elapsed());
    let on_disk = files_under(&data.path().join("run/moved"));
    assert_eq!(on_disk.len(), FILES);
    assert_eq!(
        std::fs::read(data.path().join("run/moved/f09999")).expect("a moved file"),
        b"file 9999\n"
    );
    assert!(
        files_under(&data.path().join("run"))
            .iter()
            .all(|f| f.starts_with("moved/")),
        "files are left under run/data"
    );
    cluster.assert_clean_logs();
}

// ---- e. cache-only ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_only_writes_stop_at_the_capacity_and_never_reach_the_store() {
    let (data, uri) = local_dir();
    let mount = Mount::new("cache", &uri)
        .write_mode("cache-only")
        .with("cache_only_capacity = \"4MiB\"");
    let cluster = Cluster::start_with(1, &[mount], None, "", None).expect("start worker");
    let client = cluster.client();
    let files: Vec<Vec<u8>> = (0..3).map(|i| pattern(30 + i, MIB)).collect();
    for (i, f) in files.iter().enumerate() {
        client
            .put(&format!("/cache/f{i}.bin"), Bytes::from(f.clone()))
            .await
            .expect("a write within the capacity");
    }
    let big = pattern(40, 2 * MIB);
    let err = client
        .put("/cache/big.bin", Bytes::from(big.clone()))
        .await
        .expect_err("3 MiB + 2 MiB is over the 4 MiB capacity");
    assert_eq!(status_of(&err), Some(Status::NoSpace), "{err:?}");
    assert!(err.to_string().contains("capacity"), "not a clear message: {err}");
    let missing = client.stat("/cache/big.bin").await.expect_err("the refused file");
    assert!(missing.is_not_found(), "{missing:?}");

    client.delete("/cache/f0.bin", false).await.expect("delete");
    client
        .put("/cache/big.bin", Bytes::from(big.clone()))
        .await
        .expect("the delete made room");
    let err = client
        .put("/cache/one-more.bin", Bytes::from_static(b"x"))
        .await
        .expect_err("the mount holds exactly 4 MiB");
    assert_eq!(status_of(&err), Some(Status::NoSpace), "{err:?}");

    assert!(client.read_all("/cache/big.bin").await.expect("read")[..] == big[..]);
    assert!(client.read_all("/cache/f2.bin").await.expect("read")[..] == files[2][..]);
    let status = client.cluster_status().await;
    let used = status[0].1.as_ref().expect("status").cache_only_bytes;
    assert_eq!(used, (4 * MIB) as u64);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stored = files_under(data.path());
    assert!(
        stored.is_empty(),
        "cache-only files reached the under-store: {stored:?}"
    );
    cluster.assert_clean_logs();
}

// ---- f. full journal disk -------------------------------------------------------------------

/// A small tmpfs, unmounted when dropped.
#[derive(Debug)]
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_disk_refuses_writes_and_keeps_what_was_acknowledged() {
    let tmpfs = match Tmpfs::mount("8m") {
        Ok(t) => t,
        Err(reason) => {
            eprintln!("SKIPPED: cannot mount an 8 MiB tmpfs for the journal ({reason})");
            return;
        }
    };
    let (data, uri) = local_dir();
    let mount = Mount::new("local", &uri).write_mode("back");
    let mut cluster = Cluster::start_with(1, &[mount], None, "", Some(tmpfs.dir.path())).expect("start worker");
    let client = cluster.client();
    let small: Vec<Vec<u8>> = (0..2).map(|i| pattern(50 + i, 256 * 1024)).collect();
    for (i, s) in small.iter().enumerate() {
        client
            .put(&format!("/local/small-{i}.bin"), Bytes::from(s.clone()))
            .await
            .expect("a small write fits");
    }
    let err = client
        .put("/local/big.bin", Bytes::from(pattern(52, 16 * MIB)))
        .await
        .expect_err("16 MiB does not fit an 8 MiB journal");
    assert_eq!(status_of(&err), Some(Status::NoSpace), "{err:?}");
    let missing = client.stat("/local/big.bin").await.expect_err("the refused file");
    assert!(missing.is_not_found(), "{missing:?}");
    for (i, s) in small.iter().enumerate() {
        let got = client
            .read_all(&format!("/local/small-{i}.bin"))
            .await
            .expect("an acknowledged file is readable");
        assert!(got[..] == s[..], "small-{i}.bin changed");
    }
    assert!(cluster.worker_alive(0), "the worker died of a full disk");

    // The refused file's bytes are given back (the writer aborts its session as it drops):
    // a small write succeeds again.
    let after = pattern(53, 64 * 1024);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match client.put("/local/after.bin", Bytes::from(after.clone())).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline && status_of(&e) == Some(Status::NoSpace) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("a small write after the refused one failed: {e:?}"),
        }
    }
    within(Duration::from_secs(30), "sync", client.sync("/local"))
        .await
        .expect("sync");
    assert_eq!(files_under(data.path()), ["after.bin", "small-0.bin", "small-1.bin"]);
    assert!(std::fs::read(data.path().join("after.bin")).expect("after.bin") == after);
    cluster.kill_worker(0);
}

// ---- g. namespace semantics -----------------------------------------------------------------

/// Delete, mkdir and exclusive-create semantics on `mount` (whose directory is `dir`).
async fn check_namespace_semantics(client: &Client, mount: &str, dir: &Path) {
    let p = |k: &str| format!("/{mount}/{k}");
    std::fs::write(dir.join("in-store.txt"), b"put there directly").expect("write");
    client.put(&p("d/a.txt"), Bytes::from_static(b"a")).await.expect("put");
    client
        .put(&p("d/sub/b.txt"), Bytes::from_static(b"b"))
        .await
        .expect("put");

    let err = client.delete(&p("d"), false).await.expect_err("a non-empty directory");
    assert_eq!(status_of(&err), Some(Status::NotEmpty), "{mount}: {err:?}");
    assert_eq!(&client.read_all(&p("d/a.txt")).await.expect("still there")[..], b"a");
    client.delete(&p("d"), true).await.expect("recursive delete");
    for gone in ["d/a.txt", "d/sub/b.txt"] {
        let err = client.stat(&p(gone)).await.expect_err("deleted");
        assert!(err.is_not_found(), "{mount}: {gone}: {err:?}");
    }
    let err = client.delete(&p("d"), true).await.expect_err("already deleted");
    assert!(err.is_not_found(), "{mount}: {err:?}");

    client.mkdir(&p("empty")).await.expect("mkdir");
    let root = client.list(&p(""), false).await.expect("list");
    assert!(root.contains(&ListEntry::Prefix("empty/".into())), "{mount}: {root:?}");
    assert!(!root.contains(&ListEntry::Prefix("d/".into())), "{mount}: {root:?}");
    client
        .delete(&p("empty"), false)
        .await
        .expect("delete an empty directory");
    let root = client.list(&p(""), false).await.expect("list");
    assert!(!root.contains(&ListEntry::Prefix("empty/".into())), "{mount}: {root:?}");

    let exclusive = CreateOptions {
        exclusive: true,
        ..CreateOptions::default()
    };
    let err = client
        .create(&p("in-store.txt"), exclusive.clone())
        .await
        .expect_err("exclusive create of an under-store file");
    assert!(matches!(err, ClientError::AlreadyExists { .. }), "{mount}: {err:?}");
    let mut w = client
        .create(&p("new.txt"), exclusive.clone())
        .await
        .expect("exclusive create");
    w.write(b"new").await.expect("write");
    w.close().await.expect("close");
    let err = client
        .create(&p("new.txt"), exclusive.clone())
        .await
        .expect_err("exclusive create of a file written through hoard");
    assert!(matches!(err, ClientError::AlreadyExists { .. }), "{mount}: {err:?}");
    let err = client.mkdir(&p("new.txt")).await.expect_err("mkdir over a file");
    assert!(matches!(err, ClientError::AlreadyExists { .. }), "{mount}: {err:?}");

    within(Duration::from_secs(30), "sync", client.sync(&p("")))
        .await
        .expect("sync");
    assert_eq!(files_under(dir), ["in-store.txt", "new.txt"], "{mount}");
    assert!(!dir.join("d").exists() && !dir.join("empty").exists(), "{mount}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_mkdir_and_exclusive_create_follow_file_system_rules() {
    let (back_dir, back_uri) = local_dir();
    let (through_dir, through_uri) = local_dir();
    let mounts = [
        Mount::new("back", &back_uri).write_mode("back"),
        Mount::new("through", &through_uri).write_mode("through"),
    ];
    let cluster = Cluster::start_with(2, &mounts, None, "", None).expect("start workers");
    let client = cluster.client();
    check_namespace_semantics(&client, "back", back_dir.path()).await;
    check_namespace_semantics(&client, "through", through_dir.path()).await;
    cluster.assert_clean_logs();
}

// ---- h. the under-store down --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_mode_acknowledges_writes_while_s3_is_down_and_persists_them_after() {
    let mut garage = Garage::start().await.expect("start garage");
    let mount = Mount::new("s3", &garage.uri("e2e")).write_mode("back");
    let toml = "[worker]\npart_size = \"5MiB\"\nupload_concurrency = 1\nupload_retry_max = \"1s\"\n";
    let cluster = Cluster::start_with(1, &[mount], Some(s3_section(&garage)), toml, None).expect("start worker");
    let client = cluster.client();
    let first = pattern(60, 32 * MIB);
    let second = pattern(61, MIB + 17);
    client
        .put("/s3/down/first.bin", Bytes::from(first.clone()))
        .await
        .expect("put");
    // The first file's upload is under way (or about to start) when S3 goes away.
    garage.stop();
    client
        .put("/s3/down/second.bin", Bytes::from(second.clone()))
        .await
        .expect("a write while S3 is down is acknowledged");
    assert!(client.read_all("/s3/down/first.bin").await.expect("read")[..] == first[..]);
    assert!(client.read_all("/s3/down/second.bin").await.expect("read")[..] == second[..]);

    let sync = tokio::time::timeout(Duration::from_secs(6), client.sync("/s3/down")).await;
    assert!(sync.is_err(), "sync finished with S3 down: {sync:?}");
    let status = client.cluster_status().await;
    let backlog = status[0].1.as_ref().expect("status").backlog_ops;
    assert!(backlog >= 2, "backlog with S3 down: {backlog}");

    garage.restart().await.expect("restart garage");
    within(
        Duration::from_secs(90),
        "sync after S3 is back",
        client.sync("/s3/down"),
    )
    .await
    .expect("sync");
    let store = garage.under_store("e2e").await.expect("s3 store");
    for (key, want) in [("down/first.bin", &first), ("down/second.bin", &second)] {
        let got = store
            .read_range(key, 0..u64::MAX, None)
            .await
            .expect("read from garage");
        assert!(got[..] == want[..], "{key} differs in S3");
    }
    assert!(
        cluster.metric(0, "worker_upload_failures") > 0.0,
        "no failed upload was counted"
    );
}

// ---- i. files written through hoard are read and loaded from the coordinator ----------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_file_is_read_and_loaded_from_its_coordinator() {
    use hoard_transport::ring::{Ring, chunk_key, mount_key};
    let (_data, uri) = local_dir();
    let mount = Mount::new("local", &uri).write_mode("back");
    let cluster = Cluster::start_with(3, &[mount], None, "", None).expect("start workers");
    let config = &cluster.config;
    let ids: Vec<&str> = config.workers.iter().map(|w| w.id.as_str()).collect();
    let ring = Ring::new(&ids, config.virtual_nodes);
    let coordinator = ring.owner(mount_key("local"));
    // A path whose first chunk another worker owns: reading it there would be wrong.
    let path = (0..1000)
        .map(|i| format!("elsewhere-{i}"))
        .find(|p| ring.owner(chunk_key("local", p, 0)) != coordinator)
        .expect("some path placed away from the coordinator");
    let data = pattern(7, 3 << 20);
    let client = cluster.client();
    let meta = client
        .put(&format!("/local/{path}"), Bytes::from(data.clone()))
        .await
        .expect("put");
    assert!(meta.homed, "a written file is homed at the coordinator");
    let summary = client.load(&format!("/local/{path}"), &|_| {}).await.expect("load");
    assert_eq!(summary.bytes, data.len() as u64);
    let back = client.read_all(&format!("/local/{path}")).await.expect("read");
    assert!(back[..] == data[..], "read back byte-exact");
    cluster.assert_clean_logs();
}
