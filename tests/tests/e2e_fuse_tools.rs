//! End to end: real tools in a real FUSE mount (`tar`, `rsync`, `fio`), and the cases a file
//! system must get right while files are open: a worker killed mid-read, a directory renamed
//! under an open file, a file written through an S3 mount read back from the bucket.
//!
//! Every test checks real bytes: against the original files, against the under-store (a local
//! directory after `hoard sync`, or the Garage bucket read straight through the S3 API), or with
//! fio's own checksums. Like `e2e_fuse.rs`, each test prints why and passes without checking
//! anything where this machine cannot mount FUSE; a guard always unmounts. `rsync` and `fio`
//! are Debian packages that `scripts/test.sh` installs.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use hoard_tests::cluster::{Cluster, Mount, hoard, hoard_bin};
use hoard_tests::fuse::{MountGuard, local_dir, ok, read_and_check, sh};
use hoard_tests::garage::Garage;
use hoard_tests::pattern;
use hoard_transport::ring::{Ring, chunk_key};
use hoard_ufs::UnderStore;

const MIB: usize = 1 << 20;

/// A tree at `root`: nested directories, an empty file, an empty directory, files of a few KiB
/// and one of 10 MiB.
fn make_tree(root: &Path) {
    let files: [(&str, usize); 7] = [
        ("README", 5),
        ("empty", 0),
        ("a/small.bin", 3 * 1024 + 1),
        ("a/b/big.bin", 10 * MIB + 13),
        ("a/b/c/deep.bin", 7 * 1024),
        ("d/x.txt", 4096),
        ("d/y.txt", 2 * 1024 + 7),
    ];
    for (i, (rel, len)) in files.iter().enumerate() {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, pattern(i as u64 + 200, *len)).expect("write");
    }
    std::fs::create_dir_all(root.join("empty-dir")).expect("mkdir");
}

/// A one-worker cluster with a `back` mount `back` of a new local directory.
fn back_cluster() -> (tempfile::TempDir, Cluster) {
    let (ufs, uri) = local_dir();
    let cluster =
        Cluster::start_with(1, &[Mount::new("back", &uri).write_mode("back")], None, "", None).expect("start worker");
    (ufs, cluster)
}

/// `hoard sync /back`, asserting it succeeds.
fn sync(cluster: &Cluster, mount: &str) {
    let (synced, _, err) = hoard(&cluster.config_path, &["sync", mount]);
    assert!(synced, "hoard sync {mount}: {err}");
}

/// A `back` mount of a new local directory, and a scratch directory with [`make_tree`] at `src`.
struct TreeMount {
    // Dropped in this order: the mount ends before its workers.
    mnt: MountGuard,
    cluster: Cluster,
    ufs: tempfile::TempDir,
    scratch: tempfile::TempDir,
}

impl TreeMount {
    fn start() -> Option<TreeMount> {
        let (ufs, cluster) = back_cluster();
        let mnt = MountGuard::start(&cluster, &[])?;
        let scratch = tempfile::tempdir().expect("tempdir");
        make_tree(&scratch.path().join("src"));
        Some(TreeMount {
            mnt,
            cluster,
            ufs,
            scratch,
        })
    }
}

#[test]
fn tar_extracts_a_tarball_into_the_mount_and_the_under_store_gets_the_same_tree() {
    let Some(TreeMount {
        mnt,
        cluster,
        ufs,
        scratch,
    }) = TreeMount::start()
    else {
        return;
    };
    let root = mnt.join("back");
    let (scratch, src) = (scratch.path(), scratch.path().join("src"));
    ok(scratch, "tar cf tree.tar -C src .");

    // tar x creates every directory and file, sets modes and times (accepted, not kept).
    ok(
        &root,
        &format!("mkdir x && tar xf {} -C x", scratch.join("tree.tar").display()),
    );
    ok(&root, &format!("diff -r {} x", src.display()));
    // tar c reads them back through the mount; the copy extracted outside matches too.
    ok(
        scratch,
        &format!(
            "mkdir back-out && tar cf - -C {} . | tar xf - -C back-out",
            root.join("x").display()
        ),
    );
    ok(scratch, "diff -r src back-out");

    sync(&cluster, "/back");
    ok(scratch, &format!("diff -r src {}", ufs.path().join("x").display()));
    cluster.assert_clean_logs();
}

#[test]
fn rsync_copies_a_tree_in_and_a_second_run_transfers_what_changed() {
    let Some(TreeMount {
        mnt,
        cluster,
        ufs,
        scratch,
    }) = TreeMount::start()
    else {
        return;
    };
    let root = mnt.join("back");
    let (scratch, src) = (scratch.path(), scratch.path().join("src"));
    let dest = root.join("r");
    // rsync writes each file to a temporary name in the destination, then renames it.
    ok(scratch, &format!("rsync -a src/ {}/", dest.display()));
    ok(scratch, &format!("diff -r src {}", dest.display()));

    // Append to one file, rewrite another (same size, other bytes), add one, delete one.
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(src.join("a/small.bin"))
            .expect("open");
        f.write_all(&pattern(300, 5000)).expect("append");
    }
    std::fs::write(src.join("d/x.txt"), pattern(301, 4096)).expect("rewrite");
    // rsync skips a file whose size and mtime match, and the rewrite may fall in the second of
    // the first copy: give the rewritten file an mtime that matches no copy's.
    ok(&src, "touch -d 2001-02-03T04:05:06 d/x.txt");
    std::fs::write(src.join("a/new.bin"), pattern(302, 2 * MIB + 1)).expect("write");
    std::fs::remove_file(src.join("d/y.txt")).expect("rm");
    let changes = ok(scratch, &format!("rsync -a -i --delete src/ {}/", dest.display()));
    for line in [">f", "a/small.bin", "d/x.txt", "a/new.bin", "*deleting   d/y.txt"] {
        assert!(changes.contains(line), "rsync did not report {line:?}:\n{changes}");
    }
    // The mount keeps mtimes, so rsync's quick check skips the unchanged files.
    let mut transferred: Vec<&str> = changes
        .lines()
        .filter_map(|l| l.strip_prefix(">f").and_then(|rest| rest.split_whitespace().nth(1)))
        .collect();
    transferred.sort_unstable();
    assert_eq!(
        transferred,
        ["a/new.bin", "a/small.bin", "d/x.txt"],
        "rsync transfers what changed, and only that:\n{changes}"
    );
    ok(scratch, &format!("diff -r src {}", dest.display()));
    assert!(!dest.join("d/y.txt").exists());

    sync(&cluster, "/back");
    ok(scratch, &format!("diff -r src {}", ufs.path().join("r").display()));
    cluster.assert_clean_logs();
}

/// fio's job line for the files under `dir`: 2 jobs of 64 MiB each, 1 MiB blocks, CRC32C
/// verification headers in every block.
fn fio_job(dir: &Path, rest: &str) -> String {
    format!(
        "fio --name=v --directory={} --bs=1M --size=64M --numjobs=2 --ioengine=psync --verify=crc32c \
         --fallocate=none {rest}",
        dir.display()
    )
}

/// Run a fio job line in `dir`, asserting that it exits 0, that both jobs ended without error,
/// that no block failed verification, and that the verification read all 128 MiB.
fn run_fio(dir: &Path, job: &str) -> String {
    let (success, out, err) = sh(dir, job);
    assert!(success, "`{job}` failed:\n{out}{err}");
    assert!(
        !out.contains("verify failed") && !err.contains("verify failed") && !err.contains("bad magic"),
        "fio found bad blocks:\n{out}{err}"
    );
    assert_eq!(
        out.matches("err= 0").count(),
        2,
        "both fio jobs end without error:\n{out}"
    );
    let read_all = out
        .lines()
        .any(|l| l.trim_start().starts_with("READ:") && l.contains("io=128MiB"));
    assert!(read_all, "fio verified all 128 MiB:\n{out}");
    out
}

#[test]
fn fio_verifies_sequential_writes_and_again_after_a_remount_and_in_the_under_store() {
    let (ufs, cluster) = back_cluster();
    let Some(mnt) = MountGuard::start(&cluster, &[]) else {
        return;
    };
    let dir = mnt.join("back/fio");
    std::fs::create_dir(&dir).expect("mkdir through the mount");
    // Sequential 1 MiB writes of two files at once, then fio reads them back and checks every
    // block's CRC32C (the mount refuses writes into existing files, so each run needs new files).
    run_fio(&dir, &fio_job(&dir, "--rw=write --do_verify=1"));
    sync(&cluster, "/back");
    drop(mnt);

    // A new mount process (nothing in its page cache) reads them from hoard and verifies again.
    let Some(mnt) = MountGuard::start(&cluster, &["--no-page-cache"]) else {
        return;
    };
    let dir = mnt.join("back/fio");
    run_fio(&dir, &fio_job(&dir, "--rw=read --verify_only"));
    // And the bytes `hoard sync` put in the under-store directory are what fio wrote.
    let under = ufs.path().join("fio");
    run_fio(&under, &fio_job(&under, "--rw=read --verify_only"));
    cluster.assert_clean_logs();
}

/// Read the next `len` bytes of an open file (`read`, from where the last read ended) and
/// compare them with `want[at..]`.
fn read_next_and_check(file: &mut std::fs::File, want: &[u8], at: usize, len: usize, what: &str) {
    let mut got = vec![0u8; len];
    file.read_exact(&mut got)
        .unwrap_or_else(|e| panic!("{what}: read {len} bytes at {at}: {e}"));
    assert!(got == want[at..at + len], "{what}: wrong bytes in [{at}, {})", at + len);
}

#[test]
fn a_read_goes_on_while_the_workers_that_serve_it_are_killed() {
    let (ufs, uri) = local_dir();
    let data = pattern(21, 64 * MIB);
    std::fs::write(ufs.path().join("f.bin"), &data).expect("write");
    // 8 MiB chunks: the 64 MiB file is spread over both workers.
    let toml = "chunk_size = \"8MiB\"\n[client]\nrequest_timeout = \"5s\"\nworker_retry_after = \"30s\"\n";
    let mut cluster = Cluster::start_with(2, &[Mount::new("m", &uri)], None, toml, None).expect("start workers");
    let Some(mnt) = MountGuard::start(&cluster, &["--mount", "m", "--no-page-cache"]) else {
        return;
    };
    let chunk = 8 * MIB;
    let ids: Vec<&str> = cluster.workers.iter().map(|w| w.id.as_str()).collect();
    let ring = Ring::new(&ids, cluster.config.virtual_nodes);
    let owner = |c: usize| ring.owner(chunk_key("m", "f.bin", c as u64)).expect("a worker");

    let mut file = std::fs::File::open(mnt.join("f.bin")).expect("open through the mount");
    read_next_and_check(&mut file, &data, 0, 4 * chunk, "with both workers up");
    let served = cluster.metric_total("worker_bytes_served");
    assert!(
        served >= (4 * chunk) as f64,
        "the workers served the first half ({served} bytes)"
    );

    // Kill the owner of the next chunk: the client finds it dead and asks the other worker.
    let first = owner(4);
    cluster.kill_worker(first);
    read_next_and_check(
        &mut file,
        &data,
        4 * chunk,
        2 * chunk,
        "with the owner of chunk 4 killed",
    );
    // Kill the other one too: the client reads the directory itself.
    let second = 1 - first;
    assert!(cluster.worker_alive(second));
    cluster.kill_worker(second);
    read_next_and_check(&mut file, &data, 6 * chunk, 2 * chunk, "with both workers killed");
    let mut rest = Vec::new();
    file.read_to_end(&mut rest).expect("read to the end");
    assert!(rest.is_empty(), "the file ends where it did");
}

#[test]
fn a_directory_renamed_under_an_open_file_moves_it_and_the_open_file_reads_true_bytes() {
    let (ufs, uri) = local_dir();
    let data = pattern(31, 24 * MIB);
    std::fs::create_dir(ufs.path().join("d")).expect("mkdir");
    std::fs::write(ufs.path().join("d/f.bin"), &data).expect("write");
    std::fs::write(ufs.path().join("d/other.txt"), b"other").expect("write");
    // Read-ahead of one page: what the open file reads after the rename is not cached yet.
    let toml = "[worker]\nreadahead = \"1MiB\"\n";
    let cluster =
        Cluster::start_with(1, &[Mount::new("back", &uri).write_mode("back")], None, toml, None).expect("start worker");
    let Some(mnt) = MountGuard::start(&cluster, &["--no-page-cache"]) else {
        return;
    };
    let root = mnt.join("back");
    let file = std::fs::File::open(root.join("d/f.bin")).expect("open through the mount");
    read_and_check(&file, &data, 0, 8 * MIB, "before the rename");
    // A file written through hoard, which the worker holds until the persister uploads it.
    let written = pattern(32, 6 * MIB);
    std::fs::write(root.join("d/w.bin"), &written).expect("write through the mount");
    let homed = std::fs::File::open(root.join("d/w.bin")).expect("open through the mount");
    read_and_check(&homed, &written, 0, MIB, "a written file before the rename");

    ok(&root, "mv d e");
    assert!(std::fs::read(root.join("e/f.bin")).expect("the new name") == data);
    assert!(!root.join("d").exists() && !root.join("d/f.bin").exists());
    assert_eq!(ok(&root, "ls e"), "f.bin\nother.txt\nw.bin\n");
    assert_eq!(ok(&root, "ls"), "e\n");
    // The open file reads on after the rename of its directory, as POSIX has it.
    read_and_check(&file, &data, 8 * MIB, 8 * MIB, "after the rename");
    read_and_check(&homed, &written, MIB, 5 * MIB, "a written file after the rename");

    // After a sync the rename is in the under-store.
    sync(&cluster, "/back");
    let under = ufs.path();
    assert!(std::fs::read(under.join("e/f.bin")).expect("moved on disk") == data);
    assert_eq!(
        std::fs::read(under.join("e/other.txt")).expect("moved on disk"),
        b"other"
    );
    assert!(!under.join("d").exists(), "d/ is gone from the directory");
    // With the old name gone from the directory too, the open file reads its new name.
    read_and_check(&file, &data, 16 * MIB, 8 * MIB, "after the sync");
    read_and_check(&file, &data, 0, MIB, "a cached page after the rename");
    let renamed = std::fs::File::open(root.join("e/f.bin")).expect("open the new name");
    read_and_check(&renamed, &data, 0, data.len(), "the new name after the sync");
    cluster.assert_clean_logs();
}

/// The `[s3]` table body that reaches `garage`.
fn s3_section(garage: &Garage) -> String {
    format!(
        "endpoint = \"{}\"\nregion = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
        garage.endpoint, garage.region, garage.access_key, garage.secret_key
    )
}

/// `hoard cat PATH`'s standard output, as bytes.
fn hoard_cat(config: &Path, path: &str) -> Vec<u8> {
    let out = Command::new(hoard_bin())
        .arg("--cluster")
        .arg(config)
        .args(["cat", path])
        .stdin(Stdio::null())
        .output()
        .expect("run hoard cat");
    assert!(
        out.status.success(),
        "hoard cat {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn a_file_written_through_an_s3_mount_is_the_object_in_the_bucket_at_close() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let garage = runtime.block_on(Garage::start()).expect("start garage");
    let mount = Mount::new("s3", &garage.uri("fuse")).write_mode("through");
    let toml = "[worker]\npart_size = \"5MiB\"\n";
    let cluster = Cluster::start_with(1, &[mount], Some(s3_section(&garage)), toml, None).expect("start worker");
    let Some(mnt) = MountGuard::start(&cluster, &[]) else {
        return;
    };
    let store = runtime.block_on(garage.under_store("fuse")).expect("s3 store");
    let want = pattern(41, 12 * MIB + 333);
    std::fs::create_dir(mnt.join("s3/dir")).expect("mkdir through the mount");
    {
        let mut f = std::fs::File::create(mnt.join("s3/dir/obj.bin")).expect("create through the mount");
        for piece in want.chunks(MIB) {
            f.write_all(piece).expect("write through the mount");
        }
        // S3 has no partial objects: nothing is in the bucket before the close.
        let before = runtime
            .block_on(store.stat("dir/obj.bin"))
            .expect_err("no object before close");
        assert!(before.is_not_found(), "{before:?}");
    }
    // `through`: the object is in the bucket when close returns.
    let in_s3 = runtime
        .block_on(store.read_range("dir/obj.bin", 0..u64::MAX, None))
        .expect("the object in Garage");
    assert!(
        in_s3[..] == want[..],
        "Garage holds other bytes ({} of {})",
        in_s3.len(),
        want.len()
    );
    assert!(hoard_cat(&cluster.config_path, "/s3/dir/obj.bin") == want, "hoard cat");
    assert!(std::fs::read(mnt.join("s3/dir/obj.bin")).expect("read through the mount") == want);

    // A small file copied in with cp: in the bucket at close as well.
    let scratch = tempfile::tempdir().expect("tempdir");
    let small = pattern(42, 4321);
    std::fs::write(scratch.path().join("small.bin"), &small).expect("write");
    ok(
        scratch.path(),
        &format!("cp small.bin {}", mnt.join("s3/dir/").display()),
    );
    let in_s3 = runtime
        .block_on(store.read_range("dir/small.bin", 0..u64::MAX, None))
        .expect("the object in Garage");
    assert!(in_s3[..] == small[..]);
    assert!(hoard_cat(&cluster.config_path, "/s3/dir/small.bin") == small);
    cluster.assert_clean_logs();
}
