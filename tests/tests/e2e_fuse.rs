//! End to end: `hoard mount` (a real FUSE mount, the `hoard` binary) over real worker processes
//! and local-directory mounts, driven by ordinary shell tools. Every test checks what reached
//! the under-store directory, byte for byte.
//!
//! The tests need `/dev/fuse` and the right to mount (root, or `fusermount3`). Where either is
//! missing they print why and pass without checking anything. A mount is always unmounted by a
//! guard, so a failing test leaves none behind.

use std::path::Path;
use std::time::Duration;

use hoard_tests::cluster::{Cluster, Mount, free_addr, hoard, scrape, sum_metric, tail};
use hoard_tests::fuse::{MountGuard, local_dir, ok, sh};
use hoard_tests::pattern;

const MIB: usize = 1 << 20;

/// `ESTALE` on Linux: what a write to a file unlinked while open fails with.
const ESTALE: i32 = 116;

/// A small tree of files (nested directories, an empty file, a 3 MiB file) at `root`; the
/// relative paths of its files, sorted.
fn make_tree(root: &Path) -> Vec<String> {
    let files: [(&str, usize); 6] = [
        ("a.txt", 6),
        ("empty", 0),
        ("dir/b.bin", 70_000),
        ("dir/sub/c.bin", 3 * MIB + 17),
        ("dir/sub/d.txt", 12),
        ("other/e.bin", 4096),
    ];
    for (i, (rel, len)) in files.iter().enumerate() {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, pattern(i as u64 + 100, *len)).expect("write");
    }
    let mut names: Vec<String> = files.iter().map(|(rel, _)| (*rel).to_owned()).collect();
    names.sort();
    names
}

#[test]
fn shell_tools_read_and_write_a_back_mount() {
    let (ufs, uri) = local_dir();
    let names = make_tree(ufs.path());
    let cluster =
        Cluster::start_with(1, &[Mount::new("back", &uri).write_mode("back")], None, "", None).expect("start worker");
    let Some(mnt) = MountGuard::start(&cluster, &[]) else {
        return;
    };
    let root = mnt.join("back");

    // The root lists the mounts, and holds nothing else; ls -R, find and cat see the
    // under-store's files.
    assert_eq!(ok(&mnt.path, "ls"), "back\n");
    let (created, _, err) = sh(&mnt.path, "touch at-the-root");
    assert!(!created && err.contains("Operation not permitted"), "{err}");
    let listing = ok(&root, "ls -R");
    for name in ["a.txt", "b.bin", "c.bin", "d.txt", "e.bin", "empty", "sub", "other"] {
        assert!(listing.contains(name), "ls -R misses {name}: {listing}");
    }
    let found = ok(&root, "find . -type f | sed 's|^./||' | sort");
    assert_eq!(found.lines().collect::<Vec<_>>(), names);
    let dirs = ok(&root, "find . -mindepth 1 -type d | sort");
    assert_eq!(dirs, "./dir\n./dir/sub\n./other\n");
    assert!(std::fs::read(root.join("dir/sub/c.bin")).expect("cat") == pattern(103, 3 * MIB + 17));
    assert_eq!(ok(&root, "stat -c %s dir/sub/c.bin"), format!("{}\n", 3 * MIB + 17));
    ok(&root, &format!("diff -r {} .", ufs.path().display()));

    // cp -r a tree in, and read it back through the mount.
    let src = tempfile::tempdir().expect("tempdir");
    make_tree(src.path());
    let scratch = tempfile::tempdir().expect("tempdir");
    ok(
        &root,
        &format!(
            "cp -r {} copy && diff -r {} copy",
            src.path().display(),
            src.path().display()
        ),
    );

    // dd a 64 MiB file in, read it back through the mount and through the client.
    let big = pattern(7, 64 * MIB);
    let big_src = scratch.path().join("big.bin");
    std::fs::write(&big_src, &big).expect("write");
    ok(
        &root,
        &format!("dd if={} of=big.bin bs=1M status=none", big_src.display()),
    );
    ok(&root, &format!("cmp big.bin {}", big_src.display()));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = cluster.client();
    let read = runtime
        .block_on(client.read_all("/back/big.bin"))
        .expect("read through the client");
    assert!(read[..] == big[..], "the client reads what dd wrote");

    // Concurrent readers of one file each get every byte.
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| std::fs::read(root.join("big.bin")).expect("read big.bin")))
            .collect();
        for r in readers {
            assert!(r.join().expect("reader")[..] == big[..]);
        }
    });

    // A file unlinked while open for writing does not come back when it is closed; writes to it
    // fail with ESTALE.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(root.join("tmpfile")).expect("create");
        f.write_all(b"before").expect("write");
        std::fs::remove_file(root.join("tmpfile")).expect("unlink while open");
        let e = f.write_all(b"after").expect_err("a write after the unlink");
        assert_eq!(e.raw_os_error(), Some(ESTALE), "{e}");
    }
    assert!(!root.join("tmpfile").exists());

    // mkdir, rmdir, and rmdir of a non-empty directory refused.
    ok(
        &root,
        "mkdir newdir && test -d newdir && rmdir newdir && ! test -e newdir",
    );
    ok(&root, "mkdir full && echo x > full/f");
    let (refused, _, err) = sh(&root, "rmdir full");
    assert!(!refused && err.contains("Directory not empty"), "{err}");

    // Appends: >> on an existing file, and a reopen.
    ok(
        &root,
        "echo one > log.txt && echo two >> log.txt && printf three >> log.txt",
    );
    assert_eq!(ok(&root, "cat log.txt"), "one\ntwo\nthree");

    // Writes into the middle of a file are refused, and change nothing.
    let (refused, _, err) = sh(&root, "printf X | dd of=log.txt bs=1 seek=2 conv=notrunc status=none");
    assert!(!refused && err.contains("not supported"), "{err}");
    assert_eq!(ok(&root, "cat log.txt"), "one\ntwo\nthree");

    // mv of a directory, rm of a file.
    ok(&root, "mv copy moved && ! test -e copy");
    ok(&root, &format!("diff -r {} moved", src.path().display()));
    ok(&root, "rm moved/a.txt && ! test -e moved/a.txt");

    // After a sync, the under-store directory holds the same bytes.
    let (synced, _, err) = hoard(&cluster.config_path, &["sync", "/back"]);
    assert!(synced, "{err}");
    let under = ufs.path();
    assert!(std::fs::read(under.join("big.bin")).expect("persisted") == big);
    assert_eq!(
        std::fs::read_to_string(under.join("log.txt")).expect("persisted"),
        "one\ntwo\nthree"
    );
    assert!(!under.join("copy").exists() && !under.join("moved/a.txt").exists());
    assert!(!under.join("tmpfile").exists());
    std::fs::remove_file(src.path().join("a.txt")).expect("rm");
    ok(
        &root,
        &format!("diff -r {} {}", src.path().display(), under.join("moved").display()),
    );
    cluster.assert_clean_logs();
}

#[test]
fn a_through_mount_at_the_root_has_each_file_in_the_under_store_at_close() {
    let (ufs, uri) = local_dir();
    let cluster =
        Cluster::start_with(1, &[Mount::new("thr", &uri).write_mode("through")], None, "", None).expect("start worker");
    let Some(mnt) = MountGuard::start(&cluster, &["--mount", "thr"]) else {
        return;
    };
    let root = &mnt.path;
    let src = tempfile::tempdir().expect("tempdir");
    let data = pattern(9, 5 * MIB + 3);
    std::fs::write(src.path().join("f.bin"), &data).expect("write");

    // No sync: `through` is in the under-store when close returns.
    ok(root, &format!("cp {} f.bin", src.path().join("f.bin").display()));
    assert!(std::fs::read(ufs.path().join("f.bin")).expect("in the under-store") == data);
    ok(
        root,
        "mkdir -p a/b && echo hi > a/b/x.txt && echo more >> a/b/x.txt && touch a/b/keep",
    );
    assert_eq!(
        std::fs::read_to_string(ufs.path().join("a/b/x.txt")).expect("in the under-store"),
        "hi\nmore\n"
    );
    ok(root, "touch empty && test -f empty && test ! -s empty");
    assert_eq!(
        std::fs::metadata(ufs.path().join("empty"))
            .expect("in the under-store")
            .len(),
        0
    );
    // O_TRUNC replaces; truncate to 0 empties; other sizes are refused.
    ok(root, "echo short > f.bin");
    assert_eq!(
        std::fs::read_to_string(ufs.path().join("f.bin")).expect("replaced"),
        "short\n"
    );
    ok(root, "truncate -s 0 f.bin && test ! -s f.bin");
    let (refused, _, err) = sh(root, "truncate -s 10 a/b/x.txt");
    assert!(!refused && err.contains("not supported"), "{err}");
    // rename of a file onto another replaces it; unlink; a missing file.
    ok(root, "mv a/b/x.txt empty && cat empty | grep -q more");
    assert!(!ufs.path().join("a/b/x.txt").exists());
    assert_eq!(
        std::fs::read_to_string(ufs.path().join("empty")).expect("renamed"),
        "hi\nmore\n"
    );
    ok(root, "rm empty && ! test -e empty");
    assert!(!ufs.path().join("empty").exists());
    let (missing, _, err) = sh(root, "cat nope");
    assert!(!missing && err.contains("No such file"), "{err}");
    // With --mount, the root is the mount: files live there.
    assert_eq!(ok(root, "ls"), "a\nf.bin\n");
    cluster.assert_clean_logs();
}

#[test]
fn read_only_mounts_refuse_changes_and_umount_ends_the_process() {
    let (ufs, uri) = local_dir();
    make_tree(ufs.path());
    let cluster = Cluster::start_with(1, &[Mount::new("ro", &uri)], None, "", None).expect("start worker");
    let Some(mut mnt) = MountGuard::start(&cluster, &["--read-only", "--no-page-cache"]) else {
        return;
    };
    let root = mnt.join("ro");
    assert!(std::fs::read(root.join("dir/b.bin")).expect("read") == pattern(102, 70_000));
    for script in [
        "echo x > new",
        "echo x >> a.txt",
        "mkdir d",
        "rm a.txt",
        "mv a.txt b.txt",
    ] {
        let (changed, _, err) = sh(&root, script);
        assert!(!changed && err.contains("Read-only file system"), "{script}: {err}");
    }
    let path = mnt.path.to_str().expect("UTF-8 temp path").to_owned();
    let (unmounted, _, err) = hoard(&cluster.config_path, &["umount", &path]);
    assert!(unmounted, "{err}");
    let status = mnt
        .exited_within(Duration::from_secs(10))
        .expect("hoard mount exits after umount");
    assert!(status.success(), "{status}: {}", tail(&mnt.log));
    assert!(!hoard_fuse::is_mounted(&mnt.path));
}

#[test]
fn reads_through_the_mount_survive_dead_workers() {
    let (ufs, uri) = local_dir();
    let data = pattern(11, 20 * MIB + 5);
    std::fs::write(ufs.path().join("f.bin"), &data).expect("write");
    let mut cluster = Cluster::start_with(2, &[Mount::new("m", &uri)], None, "", None).expect("start workers");
    let Some(mnt) = MountGuard::start(&cluster, &["--mount", "m", "--no-page-cache"]) else {
        return;
    };
    let file = mnt.join("f.bin");
    assert!(std::fs::read(&file).expect("warm read") == data);
    // One worker down, then both: the client fails over to the other worker, then reads the
    // directory itself. The application sees the same bytes every time.
    for i in 0..2 {
        cluster.kill_worker(i);
        assert!(
            std::fs::read(&file).expect("read with a worker down") == data,
            "after killing w{i}"
        );
    }
    assert_eq!(
        ok(&mnt.path, "ls"),
        "f.bin\n",
        "listings fall back to the directory too"
    );
}

/// `stat` of `path` in `dir` as "mode uid gid mtime".
fn attrs(dir: &Path, path: &str) -> String {
    ok(dir, &format!("stat -c '%a %u %g %Y' {path}")).trim().to_owned()
}

#[test]
fn mode_owner_times_and_symlinks_are_kept_in_metadata_across_mounts() {
    let (ufs, uri) = local_dir();
    let cluster =
        Cluster::start_with(1, &[Mount::new("m", &uri).write_mode("back")], None, "", None).expect("start worker");
    let root_user = ok(Path::new("/"), "id -u").trim() == "0";
    let owner = if root_user { "1234 5678" } else { "" };
    {
        let Some(mnt) = MountGuard::start(&cluster, &["--mount", "m"]) else {
            return;
        };
        let dir = &mnt.path;
        ok(dir, "echo hi > f && chmod 0750 f && touch -d @1700000000 f");
        if root_user {
            ok(dir, "chown 1234:5678 f");
            assert_eq!(attrs(dir, "f"), "750 1234 5678 1700000000");
        }
        // A create takes the caller's mode under its umask; cp -p and touch -r carry attributes.
        ok(
            dir,
            "(umask 077 && echo x > private) && cp -p f copy && touch -r f stamped",
        );
        assert_eq!(ok(dir, "stat -c %a private"), "600\n");
        assert_eq!(attrs(dir, "copy"), attrs(dir, "f"));
        assert_eq!(ok(dir, "stat -c %Y stamped"), "1700000000\n");
        // Symbolic links: a small object holding the target.
        ok(
            dir,
            "ln -s f link && ln -s ../nowhere/target dangling && mkdir sub && ln -s ../f sub/up",
        );
        assert_eq!(ok(dir, "readlink link dangling sub/up"), "f\n../nowhere/target\n../f\n");
        assert_eq!(ok(dir, "cat link sub/up"), "hi\nhi\n");
        assert_eq!(ok(dir, "find . -type l | sort"), "./dangling\n./link\n./sub/up\n");
        assert_eq!(ok(dir, "stat -c %F link"), "symbolic link\n");
        let (refused, _, err) = sh(dir, "ln -s f link");
        assert!(!refused && err.contains("File exists"), "{err}");
        // Writing a file makes its old tool-set time stale; its mode stays.
        ok(dir, "echo more >> copy");
        let mtime: u64 = ok(dir, "stat -c %Y copy").trim().parse().expect("mtime");
        assert!(mtime > 1_700_000_000, "a write moves the mtime: {mtime}");
        assert_eq!(ok(dir, "stat -c %a copy"), "750\n");
        // chmod of a file written before, through the mount and after its upload.
        let (synced, _, err) = hoard(&cluster.config_path, &["sync", "/m"]);
        assert!(synced, "{err}");
        ok(dir, "chmod 0604 private");
    }
    let (synced, _, err) = hoard(&cluster.config_path, &["sync", "/m"]);
    assert!(synced, "{err}");

    // The under-store object carries them (an extended attribute of the local file).
    let store = hoard_ufs::LocalUnderStore::new(ufs.path()).expect("store");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let meta = runtime
        .block_on(hoard_ufs::UnderStore::stat(&store, "f"))
        .expect("stat f");
    let md = meta.metadata.expect("stat returns metadata");
    assert_eq!(md.get("mode").map(String::as_str), Some("33256"), "{md:?}"); // S_IFREG | 0750
    assert_eq!(md.get("mtime").map(String::as_str), Some("1700000000"), "{md:?}");
    assert_eq!(
        std::fs::read_to_string(ufs.path().join("link")).expect("link object"),
        "f"
    );

    // A new mount (a new process, nothing cached) shows the same.
    let Some(mnt) = MountGuard::start(&cluster, &["--mount", "m"]) else {
        return;
    };
    let dir = &mnt.path;
    let f = attrs(dir, "f");
    assert!(f.starts_with("750 ") && f.ends_with(" 1700000000"), "{f}");
    if root_user {
        assert!(f.contains(owner), "{f}");
    }
    assert_eq!(ok(dir, "stat -c %a private"), "604\n");
    assert_eq!(ok(dir, "readlink link; cat sub/up"), "f\nhi\n");
    assert_eq!(ok(dir, "find . -type l | sort"), "./dangling\n./link\n./sub/up\n");
    cluster.assert_clean_logs();
}

/// `fuse_inodes` of the mount serving metrics at `addr`.
fn mount_inodes(addr: std::net::SocketAddr) -> f64 {
    sum_metric(&scrape(addr).expect("scrape the mount's metrics"), "fuse_inodes")
}

#[test]
fn the_mount_drops_the_inodes_the_kernel_forgets() {
    const FILES: usize = 3000;
    let (ufs, uri) = local_dir();
    std::fs::create_dir(ufs.path().join("many")).expect("mkdir");
    for i in 0..FILES {
        std::fs::write(ufs.path().join(format!("many/f{i:05}")), pattern(i as u64, 100)).expect("write");
    }
    let cluster = Cluster::start_with(1, &[Mount::new("m", &uri)], None, "", None).expect("start worker");
    let metrics = free_addr().to_string();
    // Long entry timeouts: the kernel drops a dentry whose timeout has passed at its last use,
    // and would forget the inodes of a slow listing on its own before they are counted here.
    let args = [
        "--mount",
        "m",
        "--metrics",
        &metrics,
        "--entry-ttl",
        "1h",
        "--attr-ttl",
        "1h",
    ];
    let Some(mnt) = MountGuard::start(&cluster, &args) else {
        return;
    };
    let metrics = metrics.parse().expect("address");
    let dir = &mnt.path;

    // Listing with attributes (readdirplus) and stat'ing every file hands the kernel an inode
    // per file; the mount holds them.
    assert_eq!(ok(dir, "ls -l many | grep -c '^-'"), format!("{FILES}\n"));
    assert_eq!(ok(dir, "stat -c %s many/* | sort -u"), "100\n");
    let held = mount_inodes(metrics);
    assert!(
        held > FILES as f64,
        "the mount holds {held} inodes after listing {FILES} files"
    );
    let open = std::fs::File::open(dir.join("many/f00042")).expect("open");

    // The kernel drops its unused inodes and forgets them: so does the mount. The open file's
    // inode stays.
    if ok(Path::new("/"), "id -u").trim() != "0" {
        eprintln!("skipping the forget half: dropping the kernel's caches needs root");
        return;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut now = held;
    while now > 50.0 && std::time::Instant::now() < deadline {
        ok(dir, "sync; echo 2 > /proc/sys/vm/drop_caches");
        std::thread::sleep(Duration::from_millis(200));
        now = mount_inodes(metrics);
    }
    assert!(
        now <= 50.0,
        "after dropping the kernel's caches the mount still holds {now} of {held} inodes"
    );
    assert!(now >= 2.0, "the root and the open file's inode stay: {now}");
    hoard_tests::fuse::read_and_check(&open, &pattern(42, 100), 0, 100, "the open file after the forgets");

    // Forgotten names are looked up again, under new numbers, and read as before.
    assert_eq!(
        std::fs::read(dir.join("many/f00007")).expect("read again"),
        pattern(7, 100)
    );
    assert_eq!(ok(dir, "ls many | wc -l"), format!("{FILES}\n"));
    assert_eq!(ok(dir, "ls -l many | grep -c '^-'"), format!("{FILES}\n"));
    drop(open);
    cluster.assert_clean_logs();
}
