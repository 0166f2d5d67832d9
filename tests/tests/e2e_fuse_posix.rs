//! End to end: the table "POSIX operations through a FUSE mount" of `docs/semantics.md`, row by
//! row, checked with the system calls themselves in a real FUSE mount. Rows, and their tests:
//!
//! - `stat`, `readdir`, `statfs`, `access`, `chmod` of directories and `atime`:
//!   `stat_listings_statfs_and_access_show_the_documented_defaults`; `access(X_OK)`:
//!   `access_follows_the_mode_bits`.
//! - `read`, `creat`, `O_TRUNC`, `truncate` to another size, `write` at the end (`O_APPEND`) and
//!   elsewhere, `fsync`, `chmod` of a file open for writing:
//!   `writes_truncates_appends_and_syncs_follow_the_table`.
//! - `open O_RDONLY`, `unlink` (a reader), `rename`, `renameat2`:
//!   `open_files_survive_unlink_and_rename_and_renames_refuse_what_they_cannot_do`,
//!   `a_reader_of_a_replaced_file_written_through_hoard_fails_with_estale` and
//!   `a_reader_of_a_deleted_file_fails_with_enoent_once_it_is_gone`.
//! - `mmap`, `flock`, `link`, `mknod`, extended attributes, `fallocate`, `copy_file_range`,
//!   `lseek`, `ioctl`: `mmap_locks_and_the_calls_hoard_does_not_support`.
//! - lookup of a missing name, `access` on a read-only mount:
//!   `negative_lookups_last_the_negative_ttl_and_read_only_mounts_refuse_w_ok`.
//! - `readdir` of a file and a directory of one name, `mkdir`:
//!   `listings_and_directory_markers_over_s3_and_a_local_directory`.
//! - sequential `write`: covered by `a_file_written_through_an_s3_mount_is_the_object_in_the_bucket_at_close`
//!   (`e2e_fuse_tools.rs`). `rmdir`, `unlink` (a writer): covered by
//!   `shell_tools_read_and_write_a_back_mount` (`e2e_fuse.rs`). `chmod`, `chown`, `utimes`,
//!   `symlink`, `readlink`: covered by `mode_owner_times_and_symlinks_are_kept_in_metadata_across_mounts`
//!   (`e2e_fuse.rs`). `truncate(path, 0)`: covered by
//!   `a_through_mount_at_the_root_has_each_file_in_the_under_store_at_close` (`e2e_fuse.rs`).
//!
//! Like `e2e_fuse.rs`, each test prints why and passes without checking anything where this
//! machine cannot mount FUSE; a guard always unmounts.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hoard_tests::cluster::{Cluster, Mount, hoard};
use hoard_tests::fuse::{MountGuard, local_dir, ok, read_and_check, read_at, sh};
use hoard_tests::garage::Garage;
use hoard_tests::pattern;
use hoard_ufs::UnderStore;

const MIB: usize = 1 << 20;

/// The modification time of a file of the under-store (2020-09-13).
const T0: i64 = 1_600_000_000;

/// A path as a C string, for the calls std lacks.
fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("a path without NUL")
}

/// The result of a C call that returns -1 and sets `errno` on failure.
fn cvt(ret: libc::c_int) -> std::io::Result<libc::c_int> {
    if ret == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Assert that a call failed with `errno`.
#[track_caller]
fn assert_errno<T: std::fmt::Debug>(result: std::io::Result<T>, errno: i32, what: &str) {
    match result {
        Ok(v) => panic!("{what} succeeded ({v:?}) where it must fail with errno {errno}"),
        Err(e) => assert_eq!(e.raw_os_error(), Some(errno), "{what}: {e}"),
    }
}

/// `close(2)` of a file, with its error (std's drop ignores it).
fn close(file: File) -> std::io::Result<()> {
    let fd = file.into_raw_fd();
    // SAFETY: `fd` is an open descriptor this function owns (taken from the `File`).
    cvt(unsafe { libc::close(fd) }).map(drop)
}

/// `access(2)` of `path` with `mode`.
fn access(path: &Path, mode: libc::c_int) -> std::io::Result<libc::c_int> {
    let p = c_path(path);
    // SAFETY: `p` is a NUL-terminated string that outlives the call.
    cvt(unsafe { libc::access(p.as_ptr(), mode) })
}

/// `st_mode` of `path`.
fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .mode()
}

/// `path` opened with `options`.
fn open(path: &Path, options: &mut OpenOptions) -> File {
    options
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// The content of `path`.
fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Seconds since the epoch now.
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// A one-worker cluster with a `back` mount `back` of a new local directory, and `more` mounts.
fn back_cluster(more: &[Mount]) -> (tempfile::TempDir, Cluster) {
    let (ufs, uri) = local_dir();
    let mut mounts = vec![Mount::new("back", &uri).write_mode("back")];
    mounts.extend_from_slice(more);
    let cluster = Cluster::start_with(1, &mounts, None, "", None).expect("start worker");
    (ufs, cluster)
}

/// `hoard sync /back`, asserting it succeeds.
fn sync(cluster: &Cluster) {
    let (synced, _, err) = hoard(&cluster.config_path, &["sync", "/back"]);
    assert!(synced, "hoard sync /back: {err}");
}

#[test]
fn stat_listings_statfs_and_access_show_the_documented_defaults() {
    let (ufs, cluster) = back_cluster(&[]);
    // A file written by another tool: no metadata, its own time.
    let plain = pattern(1, 70_000);
    std::fs::write(ufs.path().join("plain.bin"), &plain).expect("write");
    ok(ufs.path(), &format!("touch -d @{T0} plain.bin"));
    // 2,345 files: three listing pages of 1,000.
    std::fs::create_dir(ufs.path().join("many")).expect("mkdir");
    let mut names: Vec<String> = (0..2345).map(|i| format!("f{i:05}")).collect();
    for name in &names {
        std::fs::write(ufs.path().join("many").join(name), b"x").expect("write");
    }
    // A file whose mode is in its under-store metadata, which listings do not carry.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = hoard_ufs::LocalUnderStore::new(ufs.path()).expect("store");
    let md = hoard_ufs::Metadata::from([("mode".to_owned(), (libc::S_IFREG | 0o600).to_string())]);
    runtime
        .block_on(store.put_with("many/meta.bin", Bytes::from_static(b"meta"), &md))
        .expect("put with metadata");
    names.push("meta.bin".to_owned());
    names.sort();
    let before = now_secs();
    let Some(mnt) = MountGuard::start(&cluster, &["--mount", "back"]) else {
        return;
    };
    let after = now_secs();
    let root = &mnt.path;
    let id = |flag| ok(root, &format!("id -{flag}")).trim().parse::<u32>().expect("an id");
    let (uid, gid) = (id("u"), id("g"));

    // stat, lstat and fstat of a file without metadata: the mount's defaults, the object's time.
    let (path, file) = (
        root.join("plain.bin"),
        File::open(root.join("plain.bin")).expect("open"),
    );
    for (how, m) in [
        ("stat", std::fs::metadata(&path).expect("stat")),
        ("lstat", std::fs::symlink_metadata(&path).expect("lstat")),
        ("fstat", file.metadata().expect("fstat")),
    ] {
        assert_eq!(m.mode(), libc::S_IFREG | 0o644, "{how}: mode");
        assert_eq!((m.uid(), m.gid()), (uid, gid), "{how}: the mounting user");
        assert_eq!(m.size(), 70_000, "{how}: size");
        assert_eq!(m.mtime(), T0, "{how}: the object's own time");
        assert_eq!((m.atime(), m.ctime()), (m.mtime(), m.mtime()), "{how}: atime and ctime");
        assert_eq!(m.blocks(), 137, "{how}: the size rounded up to 512 B blocks");
        assert_eq!(m.blksize(), MIB as u64, "{how}: st_blksize");
    }
    read_and_check(&file, &plain, 0, plain.len(), "plain.bin");
    // Directories: 0755, the mounting user, the mount's start time.
    for dir in [root.clone(), root.join("many")] {
        let m = std::fs::metadata(&dir).expect("stat a directory");
        assert_eq!(m.mode(), libc::S_IFDIR | 0o755, "{}", dir.display());
        assert_eq!((m.uid(), m.gid()), (uid, gid));
        let t = m.mtime();
        assert!(
            (before..=after).contains(&t),
            "the mount's start: {t} not in [{before}, {after}]"
        );
        assert_eq!((m.atime(), m.ctime(), m.blksize()), (t, t, MIB as u64));
    }

    // chmod of a directory is accepted and kept nowhere; atime is not kept (`touch -h` sets it
    // through the path, without opening the file).
    ok(root, "chmod 0700 many && touch -a -h -d @1500000000 plain.bin");
    assert_eq!(mode_of(&root.join("many")), libc::S_IFDIR | 0o755);
    let m = std::fs::metadata(root.join("plain.bin")).expect("stat");
    assert_eq!((m.atime(), m.mtime()), (T0, T0), "atime is not kept");

    // readdir over three pages: every name once. A stat after the listing (readdirplus) asks
    // hoard for the metadata the listing lacks.
    let mut listed: Vec<String> = std::fs::read_dir(root.join("many"))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().into_string().expect("UTF-8"))
        .collect();
    listed.sort();
    assert_eq!(listed.len(), names.len(), "every entry once");
    assert!(listed == names, "readdir lists the directory's names");
    ok(root, "ls -l many > /dev/null");
    assert_eq!(
        mode_of(&root.join("many/meta.bin")) & 0o7777,
        0o600,
        "after readdirplus"
    );

    // statfs: 4 PiB (blocks of the fundamental size), all free.
    let statfs = ok(root, "stat -f -c '%b %S %f %a' .");
    let n: Vec<u64> = statfs
        .split_whitespace()
        .map(|v| v.parse().expect("a number"))
        .collect();
    assert_eq!(n[0] * n[1], 1 << 52, "4 PiB: {statfs}");
    assert_eq!((n[2], n[3]), (n[0], n[0]), "all free: {statfs}");

    // access: what the mode bits show (and see `access_follows_the_mode_bits`).
    access(&root.join("plain.bin"), libc::R_OK | libc::W_OK).expect("R_OK | W_OK of a 0644 file");
    access(&root.join("many"), libc::R_OK | libc::W_OK | libc::X_OK).expect("rwx of a 0755 directory");
    cluster.assert_clean_logs();
}

#[test]
fn writes_truncates_appends_and_syncs_follow_the_table() {
    let (_ufs, cluster) = back_cluster(&[]);
    // Direct I/O: every read asks hoard (the page cache would answer for pages just written).
    let Some(mnt) = MountGuard::start(&cluster, &["--mount", "back", "--no-page-cache"]) else {
        return;
    };
    let root = &mnt.path;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = cluster.client();
    let read_all = |path: &str| runtime.block_on(client.read_all(path));
    let data = pattern(2, 2 * MIB + 7);

    // creat: visible in this mount while written (size growing), to others at close; reading
    // back bytes not yet published fails.
    let path = root.join("new.bin");
    let mut f = open(&path, OpenOptions::new().read(true).write(true).create_new(true));
    f.write_all(&data[..MIB]).expect("write");
    assert_eq!(std::fs::metadata(&path).expect("stat while written").len(), MIB as u64);
    let e = read_all("/back/new.bin").expect_err("another client before the close");
    assert!(e.is_not_found(), "{e:?}");
    assert_errno(read_at(&f, 0, 10), libc::ENOTSUP, "a read of unpublished bytes");
    f.write_all(&data[MIB..]).expect("write");
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), data.len() as u64);
    close(f).expect("close");
    assert!(read_all("/back/new.bin").expect("published at close") == data[..]);
    // readv, then read, of the published file.
    let (mut a, mut b, mut f) = (vec![0u8; 1000], vec![0u8; MIB], File::open(&path).expect("open"));
    let n = f
        .read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])
        .expect("readv");
    assert!(
        n == 1000 + MIB && [a, b].concat() == data[..n],
        "readv reads the file's bytes"
    );
    let mut rest = Vec::new();
    f.read_to_end(&mut rest).expect("read");
    assert!(rest == data[n..], "read goes on where readv ended");

    // O_EXCL: checked at open, and again when the file is published.
    let excl = || OpenOptions::new().write(true).create_new(true).open(root.join("race"));
    std::fs::write(root.join("race"), b"first").expect("write");
    assert_errno(excl(), libc::EEXIST, "O_EXCL on an existing name");
    std::fs::remove_file(root.join("race")).expect("unlink");
    let mut mine = excl().expect("O_EXCL on a free name");
    mine.write_all(b"mine").expect("write");
    runtime
        .block_on(client.put("/back/race", Bytes::from_static(b"theirs")))
        .expect("another client creates the name meanwhile");
    assert_errno(close(mine), libc::EEXIST, "close of an O_EXCL file taken meanwhile");
    assert_eq!(&read_all("/back/race").expect("read")[..], b"theirs");

    // O_TRUNC and ftruncate(fd, 0) keep the mode and owner (a chown works as root only); the old
    // content stays visible to others until the close.
    let kept = root.join("kept");
    std::fs::write(&kept, b"old content").expect("write");
    std::fs::set_permissions(&kept, PermissionsExt::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(&kept, Some(1234), Some(5678)).ok();
    let attrs = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| (m.mode() & 0o7777, m.uid(), m.gid()))
            .expect("stat")
    };
    let before = attrs(&kept);
    assert_eq!(before.0, 0o600);
    let mut t = open(&kept, OpenOptions::new().write(true).truncate(true));
    t.write_all(b"new").expect("write");
    assert_eq!(&read_all("/back/kept").expect("read")[..], b"old content");
    close(t).expect("close");
    assert_eq!((read(&kept), attrs(&kept)), (b"new".to_vec(), before), "after O_TRUNC");
    let mut t = open(&kept, OpenOptions::new().write(true));
    t.set_len(0).expect("ftruncate to 0");
    t.write_all(b"x").expect("write");
    close(t).expect("close");
    assert_eq!((read(&kept), attrs(&kept)), (b"x".to_vec(), before), "after ftruncate");

    // truncate to the current size is a no-op, to another size ENOTSUP; writes into the middle
    // and over a hole are refused, and change nothing; a write at the end appends.
    let ten = root.join("ten");
    std::fs::write(&ten, b"0123456789").expect("write");
    let p = c_path(&ten);
    // SAFETY: `p` is a NUL-terminated path.
    cvt(unsafe { libc::truncate(p.as_ptr(), 10) }).expect("truncate to the current size");
    let w = open(&ten, OpenOptions::new().write(true));
    w.set_len(10).expect("ftruncate to the current size");
    assert_errno(w.set_len(12), libc::ENOTSUP, "ftruncate to 12");
    assert_errno(w.write_at(b"X", 2), libc::ENOTSUP, "a write into the middle");
    assert_errno(w.write_at(b"X", 20), libc::ENOTSUP, "a write past the end");
    w.write_all_at(b"ab", 10).expect("a write at the end");
    close(w).expect("close");
    assert_eq!(read(&ten), b"0123456789ab");

    // O_APPEND: two appenders at once; each one's bytes land whole after what the file holds
    // when they are published.
    std::fs::write(root.join("log"), b"base\n").expect("write");
    let append = || open(&root.join("log"), OpenOptions::new().append(true));
    let (mut first, mut second) = (append(), append());
    first.write_all(&[b'A'; 3000]).expect("append");
    second.write_all(&[b'B'; 2000]).expect("append");
    close(second).expect("close");
    first.write_all(&[b'a'; 1000]).expect("append");
    close(first).expect("close");
    let want = [&b"base\n"[..], &[b'B'; 2000], &[b'A'; 3000], &[b'a'; 1000]].concat();
    assert!(read(&root.join("log")) == want, "appends in publish order");

    // fsync and fdatasync (back mode: durable and visible to others; the writer stays open).
    // A chmod of the open file is kept for its publish.
    let mut s = File::create(root.join("synced")).expect("create");
    s.write_all(&data[..MIB]).expect("write");
    s.sync_all().expect("fsync");
    assert!(read_all("/back/synced").expect("visible after fsync") == data[..MIB]);
    s.write_all(&data[MIB..]).expect("write");
    s.sync_data().expect("fdatasync");
    s.set_permissions(PermissionsExt::from_mode(0o640)).expect("fchmod");
    close(s).expect("close");
    assert!(read_all("/back/synced").expect("read") == data[..]);
    assert_eq!(mode_of(&root.join("synced")) & 0o7777, 0o640);
    cluster.assert_clean_logs();
}

/// `renameat2(2)` of `src` to `dst` with `flags`.
fn renameat2(src: &Path, dst: &Path, flags: libc::c_uint) -> std::io::Result<libc::c_int> {
    let (s, d) = (c_path(src), c_path(dst));
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    cvt(unsafe { libc::renameat2(libc::AT_FDCWD, s.as_ptr(), libc::AT_FDCWD, d.as_ptr(), flags) })
}

#[test]
fn open_files_survive_unlink_and_rename_and_renames_refuse_what_they_cannot_do() {
    let (other, other_uri) = local_dir();
    let (ufs, cluster) = back_cluster(&[Mount::new("other", &other_uri)]);
    // The root of all mounts (for EXDEV), without the page cache: every read asks hoard.
    let Some(mnt) = MountGuard::start(&cluster, &["--no-page-cache"]) else {
        return;
    };
    let root = mnt.join("back");

    // open O_RDONLY reads the version it opened, also after the file is replaced; unlink of a
    // file open for reading: the reader keeps its version.
    let (old, new) = (pattern(4, 3 * MIB), pattern(5, 3 * MIB));
    std::fs::write(ufs.path().join("ver.bin"), &old).expect("write");
    let reader = File::open(root.join("ver.bin")).expect("open");
    read_and_check(&reader, &old, 0, MIB, "before the replace");
    std::fs::write(root.join("ver.bin"), &new).expect("replace");
    read_and_check(&reader, &old, MIB, MIB, "the old version after the replace");
    assert!(read(&root.join("ver.bin")) == new, "a new open reads the new one");
    std::fs::write(ufs.path().join("del.bin"), &old).expect("write");
    let reader = File::open(root.join("del.bin")).expect("open");
    // Read whole before the unlink, so that hoard holds all of its pages (the reader keeps its
    // version while hoard holds it, docs/semantics.md).
    read_and_check(&reader, &old, 0, 3 * MIB, "before the unlink");
    std::fs::remove_file(root.join("del.bin")).expect("unlink");
    assert!(!root.join("del.bin").exists());
    read_and_check(&reader, &old, MIB, 2 * MIB, "after the unlink");

    // renameat2: RENAME_NOREPLACE refuses an existing name and renames to a free one;
    // RENAME_EXCHANGE is refused. Across mounts: EXDEV. Nothing moves when refused.
    let (a, b, c) = (root.join("a"), root.join("b"), root.join("c"));
    std::fs::write(&a, b"a").expect("write");
    std::fs::write(&b, b"b").expect("write");
    let r = renameat2(&a, &b, libc::RENAME_NOREPLACE);
    assert_errno(r, libc::EEXIST, "RENAME_NOREPLACE onto a name");
    let r = renameat2(&a, &b, libc::RENAME_EXCHANGE);
    assert_errno(r, libc::EINVAL, "RENAME_EXCHANGE");
    assert_eq!((read(&a), read(&b)), (b"a".to_vec(), b"b".to_vec()));
    renameat2(&a, &c, libc::RENAME_NOREPLACE).expect("RENAME_NOREPLACE to a free name");
    assert!(!a.exists() && read(&c) == b"a");
    let r = std::fs::rename(&c, mnt.join("other/c"));
    assert_errno(r, libc::EXDEV, "a rename across mounts");
    assert!(c.exists() && !mnt.join("other/c").exists() && !other.path().join("c").exists());

    // A file open for reading reads on under its new name, once the old one is gone.
    let moving = pattern(6, 4 * MIB);
    std::fs::write(root.join("moving.bin"), &moving).expect("write");
    let reader = File::open(root.join("moving.bin")).expect("open");
    read_and_check(&reader, &moving, 0, MIB, "before the rename");
    std::fs::rename(root.join("moving.bin"), root.join("moved.bin")).expect("rename");
    read_and_check(&reader, &moving, MIB, MIB, "after the rename");
    sync(&cluster);
    read_and_check(&reader, &moving, 2 * MIB, 2 * MIB, "after the rename and a sync");

    // A file being written keeps its writer's name: its bytes are published under the old name.
    std::fs::write(root.join("w.txt"), b"old\n").expect("write");
    let mut w = open(&root.join("w.txt"), OpenOptions::new().append(true));
    w.write_all(b"new\n").expect("append");
    std::fs::rename(root.join("w.txt"), root.join("w2.txt")).expect("rename while written");
    close(w).expect("close");
    assert_eq!(read(&root.join("w2.txt")), b"old\n", "the renamed file");
    assert_eq!(read(&root.join("w.txt")), b"new\n", "the writer's bytes under its name");
    cluster.assert_clean_logs();
}

/// A shared map of the first `len` bytes of `file` with protection `prot`.
fn map(file: &File, len: usize, prot: libc::c_int) -> *mut libc::c_void {
    // SAFETY: a new mapping of an open descriptor at an address the kernel picks.
    let map = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, file.as_raw_fd(), 0) };
    assert_ne!(map, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
    map
}

#[test]
fn mmap_locks_and_the_calls_hoard_does_not_support() {
    let (ufs, cluster) = back_cluster(&[]);
    let data = pattern(7, 3 * MIB + 5);
    std::fs::write(ufs.path().join("data.bin"), &data).expect("write");
    let Some(mnt) = MountGuard::start(&cluster, &["--mount", "back"]) else {
        return;
    };
    let root = &mnt.path;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    // mmap read-only: the file's bytes.
    let src = File::open(root.join("data.bin")).expect("open");
    let ro = map(&src, data.len(), libc::PROT_READ);
    // SAFETY: the mapping is `data.len()` readable bytes, alive until the munmap below.
    let mapped = unsafe { std::slice::from_raw_parts(ro.cast::<u8>(), data.len()) };
    assert!(mapped == &data[..], "a read-only map shows the file's bytes");
    // SAFETY: `ro` is the mapping made above, of that length; `mapped` is not used after.
    cvt(unsafe { libc::munmap(ro, data.len()) }).expect("munmap");

    // A writable shared map: its change cannot be written back (ENOTSUP, as any write into the
    // middle), msync fails, and the file stays as it was.
    let small = pattern(8, 8192);
    std::fs::write(root.join("shared.bin"), &small).expect("write");
    let rw = open(&root.join("shared.bin"), OpenOptions::new().read(true).write(true));
    let shared = map(&rw, small.len(), libc::PROT_READ | libc::PROT_WRITE);
    // SAFETY: byte 100 lies inside the writable mapping of `small.len()` bytes.
    unsafe { *shared.cast::<u8>().add(100) = !small[100] };
    // SAFETY: `shared` is the mapping made above, of that length.
    let synced = cvt(unsafe { libc::msync(shared, small.len(), libc::MS_SYNC) });
    // SAFETY: as above; the mapping is not used after.
    cvt(unsafe { libc::munmap(shared, small.len()) }).expect("munmap");
    drop(rw);
    assert_errno(synced, libc::ENOTSUP, "msync of a written shared map");
    let client = cluster.client();
    assert!(runtime.block_on(client.read_all("/back/shared.bin")).expect("read") == small);
    assert!(read(&root.join("shared.bin")) == small, "the file is unchanged");

    // flock and fcntl (open file description) locks hold among the processes of this machine.
    let one = open(&root.join("data.bin"), OpenOptions::new().read(true).write(true));
    let two = File::open(root.join("data.bin")).expect("open");
    // SAFETY: `f` is an open descriptor.
    let flock = |f: &File, op| cvt(unsafe { libc::flock(f.as_raw_fd(), op) });
    flock(&one, libc::LOCK_EX).expect("flock");
    let r = flock(&two, libc::LOCK_EX | libc::LOCK_NB);
    assert_errno(r, libc::EWOULDBLOCK, "a second flock");
    let (locked, _, _) = sh(root, "flock -n data.bin true");
    assert!(!locked, "another process cannot take the lock");
    flock(&one, libc::LOCK_UN).expect("unlock");
    flock(&two, libc::LOCK_EX | libc::LOCK_NB).expect("flock once free");
    flock(&two, libc::LOCK_UN).expect("unlock");
    let ofd = |f: &File, kind: libc::c_int| {
        // SAFETY: all-zero bytes are a valid `flock` (with `l_len` 0: the whole file).
        let mut l: libc::flock = unsafe { std::mem::zeroed() };
        l.l_type = kind as i16;
        // SAFETY: `f` is an open descriptor and `l` a valid `flock`.
        cvt(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &l) })
    };
    ofd(&one, libc::F_WRLCK).expect("a write lock");
    assert_errno(ofd(&two, libc::F_RDLCK), libc::EAGAIN, "a conflicting read lock");
    ofd(&one, libc::F_UNLCK).expect("unlock");
    ofd(&two, libc::F_RDLCK).expect("a read lock once free");
    drop((one, two));

    // link, mknod and mkfifo: EPERM.
    let r = std::fs::hard_link(root.join("data.bin"), root.join("hard"));
    assert_errno(r, libc::EPERM, "link");
    let node = c_path(&root.join("node"));
    for (what, kind) in [("mkfifo", libc::S_IFIFO), ("mknod S_IFSOCK", libc::S_IFSOCK)] {
        // SAFETY: `node` is a NUL-terminated path.
        let r = cvt(unsafe { libc::mknod(node.as_ptr(), kind | 0o644, 0) });
        assert_errno(r, libc::EPERM, what);
    }
    assert!(!root.join("hard").exists() && !root.join("node").exists());

    // Extended attributes: ENOTSUP; the kernel asks the mount once, then answers itself.
    let (p, name, mut buf) = (c_path(&root.join("data.bin")), c"user.test", [0u8; 64]);
    for _ in 0..3 {
        // SAFETY: `p` and `name` are NUL-terminated; `buf` is writable for its length.
        let got = unsafe { libc::getxattr(p.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_errno(cvt(got as i32), libc::ENOTSUP, "getxattr");
        // SAFETY: as above.
        let listed = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_errno(cvt(listed as i32), libc::ENOTSUP, "listxattr");
        // SAFETY: `p` and `name` are NUL-terminated; the value is 1 readable byte.
        let set = unsafe { libc::setxattr(p.as_ptr(), name.as_ptr(), b"v".as_ptr().cast(), 1, 0) };
        assert_errno(cvt(set), libc::ENOTSUP, "setxattr");
    }
    let log = std::fs::read_to_string(&mnt.log).expect("the mount's log");
    for op in ["getxattr", "listxattr", "setxattr"] {
        let asked = log.matches(&format!("op=\"{op}\"")).count();
        assert_eq!(asked, 1, "the kernel asks the mount for {op} once");
    }

    // fallocate: ENOTSUP. copy_file_range: the kernel copies. lseek: no holes. ioctl: ENOTTY.
    let out = File::create(root.join("copy.bin")).expect("create");
    // SAFETY: `out` is an open descriptor.
    let r = cvt(unsafe { libc::fallocate(out.as_raw_fd(), 0, 0, 4096) });
    assert_errno(r, libc::ENOTSUP, "fallocate");
    let (null, mut copied) = (std::ptr::null_mut(), 0);
    while copied < data.len() {
        let (from, to, left) = (src.as_raw_fd(), out.as_raw_fd(), data.len() - copied);
        // SAFETY: open descriptors; null offsets use (and move) the files' own.
        let n = unsafe { libc::copy_file_range(from, null, to, null, left, 0) };
        let n = cvt(n as libc::c_int).expect("copy_file_range") as usize;
        assert!(n > 0, "copy_file_range stopped at {copied}");
        copied += n;
    }
    close(out).expect("close");
    assert!(read(&root.join("copy.bin")) == data, "copy_file_range copies");
    // SAFETY: `src` is an open descriptor.
    let seek = |at, whence| match unsafe { libc::lseek(src.as_raw_fd(), at, whence) } {
        -1 => Err(std::io::Error::last_os_error()),
        at => Ok(at),
    };
    assert_eq!(seek(100, libc::SEEK_DATA).expect("SEEK_DATA"), 100);
    let end = data.len() as i64;
    assert_eq!(seek(100, libc::SEEK_HOLE).expect("SEEK_HOLE"), end, "no holes");
    assert_errno(seek(end, libc::SEEK_DATA), libc::ENXIO, "SEEK_DATA at the end");
    // SAFETY: all-zero bytes are a valid `termios`.
    let mut tio: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `src` is an open descriptor; TCGETS writes one `termios`.
    let r = cvt(unsafe { libc::ioctl(src.as_raw_fd(), libc::TCGETS, &mut tio) });
    assert_errno(r, libc::ENOTTY, "TCGETS");
    cluster.assert_clean_logs();
}

/// Whether `path` exists, as a `stat` through the mount answers now.
fn exists(path: &Path) -> bool {
    path.try_exists()
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
}

#[test]
fn negative_lookups_last_the_negative_ttl_and_read_only_mounts_refuse_w_ok() {
    let (_ufs, cluster) = back_cluster(&[]);
    let start = |ttl: &str| MountGuard::start(&cluster, &["--mount", "back", "--negative-ttl", ttl]);
    let (Some(hour), Some(zero), Some(second)) = (start("1h"), start("0s"), start("1s")) else {
        return;
    };
    let Some(ro) = MountGuard::start(&cluster, &["--mount", "back", "--read-only"]) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = cluster.client();

    // Each mount looks the names up and finds nothing; then another client creates them.
    for name in ["x", "y"] {
        for mnt in [&hour, &zero, &second] {
            assert!(!exists(&mnt.join(name)), "{name} is missing at first");
        }
        runtime
            .block_on(client.put(&format!("/back/{name}"), Bytes::from_static(b"theirs")))
            .expect("another client creates a file");
    }
    // --negative-ttl 0: at once. 1h: not now (checked at once: the kernel may drop a negative
    // entry early, e.g. at `echo 2 > /proc/sys/vm/drop_caches`). 1s: after a second.
    assert!(exists(&zero.join("x")), "--negative-ttl 0 asks hoard every time");
    let cached = (exists(&hour.join("x")), exists(&hour.join("y")));
    assert_eq!(cached, (false, false), "negative entries last --negative-ttl");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(exists(&second.join("x")), "after --negative-ttl the name shows up");
    // A create through the mount shows at once, over its own negative entry.
    assert!(!exists(&hour.join("mine")));
    std::fs::write(hour.join("mine"), b"mine").expect("create");
    assert!(exists(&hour.join("mine")), "a create through this mount shows at once");

    // access on a read-only mount: W_OK is EROFS, the rest what the mode bits show.
    for path in [ro.join("x"), ro.path.clone()] {
        assert_errno(access(&path, libc::W_OK), libc::EROFS, "access(W_OK)");
        access(&path, libc::R_OK).expect("access(R_OK)");
    }
    access(&ro.path, libc::X_OK).expect("access(X_OK) of a directory");
    cluster.assert_clean_logs();
}

#[test]
fn listings_and_directory_markers_over_s3_and_a_local_directory() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let garage = runtime.block_on(Garage::start()).expect("start garage");
    let store = runtime.block_on(garage.under_store("posix")).expect("s3 store");
    // Only possible in S3: a file `both` and a directory `both/`. And an empty directory marker.
    for (key, body) in [("both", &b"file"[..]), ("both/inner", b"inner"), ("marked/", b"")] {
        runtime
            .block_on(store.put(key, Bytes::from_static(body)))
            .expect("put into the bucket");
    }
    let (loc, loc_uri) = local_dir();
    let s3 = format!(
        "endpoint = \"{}\"\nregion = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
        garage.endpoint, garage.region, garage.access_key, garage.secret_key
    );
    let mounts = [
        Mount::new("s3", &garage.uri("posix")).write_mode("through"),
        Mount::new("loc", &loc_uri).write_mode("through"),
    ];
    let cluster = Cluster::start_with(1, &mounts, Some(s3), "", None).expect("start worker");
    let Some(mnt) = MountGuard::start(&cluster, &[]) else {
        return;
    };
    let (s3, local) = (mnt.join("s3"), mnt.join("loc"));

    // readdir shows the file once, and lookups find the file; a marker is an empty directory.
    assert_eq!(ok(&s3, "ls"), "both\nmarked\n");
    assert_eq!(ok(&s3, "ls -l | grep both | cut -c1"), "-\n", "readdir lists a file");
    assert_eq!(ok(&s3, "stat -c %F both"), "regular file\n");
    assert_eq!(read(&s3.join("both")), b"file");
    assert_eq!(ok(&s3, "stat -c %F marked && ls -A marked"), "directory\n");

    // mkdir writes a marker: S3 keeps it when the directory's last file goes; over a local
    // directory the directory goes with it. (Listings, not lookups: the kernel keeps the name
    // `d` for --entry-ttl.)
    for dir in [&s3, &local] {
        ok(dir, "mkdir d && echo x > d/f && rm d/f");
    }
    assert_eq!(ok(&s3, "ls"), "both\nd\nmarked\n", "S3 keeps the marker");
    runtime.block_on(store.stat("d/")).expect("the marker in the bucket");
    assert_eq!(ok(&local, "ls -A"), "", "the local store prunes the empty directory");
    assert!(!loc.path().join("d").exists());
    // Parents need no markers.
    runtime
        .block_on(store.put("p/q/f", Bytes::from_static(b"f")))
        .expect("put into the bucket");
    assert_eq!(ok(&s3, "find p | sort"), "p\np/q\np/q/f\n");
    cluster.assert_clean_logs();
}

#[test]
fn access_follows_the_mode_bits() {
    let (ufs, cluster) = back_cluster(&[]);
    std::fs::write(ufs.path().join("f"), b"f").expect("write");
    let Some(mnt) = MountGuard::start(&cluster, &["--mount", "back"]) else {
        return;
    };
    assert_eq!(mode_of(&mnt.join("f")) & 0o777, 0o644);
    let r = access(&mnt.join("f"), libc::X_OK);
    assert_errno(r, libc::EACCES, "access(X_OK) of a 0644 file");
}

/// A file written through hoard lives in the coordinator until it is persisted: its old
/// version is not kept once replaced, and an open reader's next uncached read says so.
#[test]
fn a_reader_of_a_replaced_file_written_through_hoard_fails_with_estale() {
    let (_ufs, cluster) = back_cluster(&[]);
    let Some(mnt) = MountGuard::start(&cluster, &["--mount", "back", "--no-page-cache"]) else {
        return;
    };
    let (old, new) = (pattern(9, 3 * MIB), pattern(10, 3 * MIB));
    std::fs::write(mnt.join("ver.bin"), &old).expect("write");
    let reader = File::open(mnt.join("ver.bin")).expect("open");
    read_and_check(&reader, &old, 0, MIB, "before the replace");
    std::fs::write(mnt.join("ver.bin"), &new).expect("replace");
    let r = read_at(&reader, MIB, 2 * MIB);
    assert_errno(r, libc::ESTALE, "a read of the replaced version");
    read_and_check(
        &File::open(mnt.join("ver.bin")).expect("open"),
        &new,
        0,
        3 * MIB,
        "the new version",
    );
}

#[test]
fn a_reader_of_a_deleted_file_fails_with_enoent_once_it_is_gone() {
    let (ufs, cluster) = back_cluster(&[]);
    let big = pattern(11, 24 * MIB);
    std::fs::write(ufs.path().join("gone.bin"), &big).expect("write");
    let Some(mnt) = MountGuard::start(&cluster, &["--mount", "back", "--no-page-cache"]) else {
        return;
    };
    let reader = File::open(mnt.join("gone.bin")).expect("open");
    read_and_check(&reader, &big, 0, MIB, "before the unlink");
    std::fs::remove_file(mnt.join("gone.bin")).expect("unlink");
    sync(&cluster);
    assert!(!ufs.path().join("gone.bin").exists(), "the sync deleted it");
    let r = read_at(&reader, 20 * MIB, MIB);
    assert_errno(r, libc::ENOENT, "a read of a deleted file");
}
