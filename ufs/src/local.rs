//! [`LocalUnderStore`]: a directory of the local file system as an under-store.
//!
//! It lets hoard cache a shared file system (NFS, a parallel file system mount) and gives tests
//! and single-machine setups an under-store without any server. Keys map to files under the root.
//! Writes go to a hidden temporary file in the target directory and are renamed into place, so a
//! reader sees the old object or the new one, never a mix. The version tag is `size-mtime_ns`;
//! reads that name a version check it on the open file before and after reading.
//!
//! Limits of a file system compared with S3: a key cannot be both an object and a "directory" of
//! other objects (`a` and `a/b`), keys cannot have empty or `.`/`..` components, and a file edited
//! in place without changing its size within one timestamp tick keeps its version tag. Writes made
//! through this store always change the tag: a same-size rewrite is given a later mtime.
//!
//! A key ending in `/` is a directory marker ([`marker`]), stored as the directory itself: it holds
//! no data, any existing directory stats as one, listings show a directory as one only while it is
//! empty, and deleting the last object under a directory removes the directory (marker included).
//! A write into a new directory, or a delete that prunes one, leaves it empty for a moment; a
//! listing that finds an empty directory waits for such changes to finish and looks again
//! ([`settle`]), so it never shows a marker nobody made.

mod listing;
mod marker;
mod multipart;
mod settle;
mod walk;

use std::fs::{self, File};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{
    CompletedPart, ListPage, ListRequest, Metadata, ObjectMeta, UfsError, UfsResult, UnderStore, validate_metadata,
};
#[cfg(any(test, feature = "testing"))]
pub(crate) use listing::paginate;
use listing::{MULTIPART_DIR, TMP_PREFIX};

/// A directory of the local file system, seen as an object store.
///
/// A key ending in `/` is a directory marker, stored as the directory itself: it holds no data,
/// any existing directory stats as one, listings show a directory as one only while it is empty,
/// and deleting the last object under a directory removes the directory, marker included (see
/// [`UnderStore`]'s "Directory markers").
///
/// # Example
/// ```
/// # async fn demo() -> hoard_ufs::UfsResult<()> {
/// use hoard_ufs::{LocalUnderStore, UnderStore};
/// let store = LocalUnderStore::new(std::env::temp_dir().join("hoard-local-doc"))?;
/// store.put("a/b.txt", bytes::Bytes::from_static(b"hi")).await?;
/// assert_eq!(store.stat("a/b.txt").await?.size, 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LocalUnderStore {
    root: PathBuf,
}

impl LocalUnderStore {
    /// Opens the directory `root` as a store, creating it (and its parents) when missing.
    ///
    /// # Errors
    /// [`UfsError::Io`] when the directory cannot be created or resolved (for instance because
    /// `root` is a file), [`UfsError::Config`] when it still is not a directory afterwards.
    pub fn new(root: impl AsRef<Path>) -> UfsResult<Self> {
        let root = root.as_ref();
        let shown = root.display().to_string();
        fs::create_dir_all(root).map_err(|e| UfsError::io(&shown, e))?;
        let root = fs::canonicalize(root).map_err(|e| UfsError::io(&shown, e))?;
        if !root.is_dir() {
            return Err(UfsError::Config(format!("{shown} is not a directory")));
        }
        Ok(Self { root })
    }

    /// The directory that holds the objects (absolute, symbolic links resolved).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `key` (the directory, for a marker), after checking that the key stays inside
    /// the root.
    fn file_of(&self, key: &str) -> UfsResult<PathBuf> {
        validate_key(key)?;
        Ok(path_of(&self.root, key))
    }
}

/// The file of a valid `key` under `root`; for a directory marker `a/b/`, the directory `a/b`.
fn path_of(root: &Path, key: &str) -> PathBuf {
    root.join(key.strip_suffix('/').unwrap_or(key))
}

/// Checks that `key` names a file inside the root that is not hoard's own bookkeeping, or with one
/// trailing `/` a directory (a marker).
pub(crate) fn validate_key(key: &str) -> UfsResult<()> {
    let invalid = |reason: &str| Err(UfsError::invalid(key, reason));
    if key.is_empty() {
        return invalid("empty key");
    }
    if key.starts_with('/') {
        return invalid("absolute keys are not allowed");
    }
    if key.contains('\0') {
        return invalid("keys cannot contain NUL");
    }
    let body = key.strip_suffix('/').unwrap_or(key);
    for (i, component) in body.split('/').enumerate() {
        match component {
            "" => return invalid("empty path component (`//`)"),
            "." | ".." => return invalid("`.` and `..` components are not allowed"),
            c if c.starts_with(TMP_PREFIX) || (i == 0 && c == MULTIPART_DIR) => {
                return invalid("the name is reserved for hoard's temporary files");
            }
            _ => {}
        }
    }
    Ok(())
}

/// The version tag of a file: `size-mtime_ns`.
fn version_of(meta: &fs::Metadata) -> String {
    format!("{}-{}", meta.len(), mtime_ns(meta))
}

/// The modification time in nanoseconds since the Unix epoch.
fn mtime_ns(meta: &fs::Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

/// Fails with `VersionMismatch` unless `expected` is absent or is `actual`.
fn check_version(key: &str, actual: &str, expected: Option<&str>) -> UfsResult<()> {
    match expected {
        Some(expected) if expected != actual => Err(UfsError::VersionMismatch {
            path: key.to_owned(),
            expected: expected.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// What a listing knows of the file of `key`: no user metadata (as on S3).
fn object_meta(key: &str, meta: &fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        path: key.to_owned(),
        size: meta.len(),
        version: version_of(meta),
        mtime: meta.modified().ok(),
        metadata: None,
    }
}

/// The extended attribute that holds an object's user metadata (see [`crate::metadata::encode`]).
const METADATA_XATTR: &str = "user.hoard.metadata";

/// The user metadata kept with `file`: none when the attribute is missing, or when the file
/// system has no user extended attributes (nothing can have been stored then).
fn read_metadata(key: &str, file: &Path) -> UfsResult<Metadata> {
    match xattr::get(file, METADATA_XATTR) {
        Ok(Some(bytes)) => Ok(crate::metadata::decode(&String::from_utf8_lossy(&bytes))),
        Ok(None) => Ok(Metadata::new()),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => Ok(Metadata::new()),
        Err(e) => Err(UfsError::io(key, e)),
    }
}

/// Stores `metadata` with the (temporary) file at `file` before it is renamed into place.
fn write_metadata(file: &Path, metadata: &Metadata) -> io::Result<()> {
    if metadata.is_empty() {
        return Ok(());
    }
    xattr::set(file, METADATA_XATTR, crate::metadata::encode(metadata).as_bytes()).map_err(|e| {
        if e.kind() == io::ErrorKind::Unsupported {
            io::Error::new(
                e.kind(),
                "this file system keeps no user extended attributes, where the local store keeps metadata",
            )
        } else {
            e
        }
    })
}

/// Runs blocking file-system work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> UfsResult<T> + Send + 'static) -> UfsResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(UfsError::Io {
            path: String::new(),
            source: io::Error::other(e),
        }),
    }
}

/// Maps an error of writing `key` to the store's errors: a path clash between an object and a
/// "directory" of objects is an invalid request, not an I/O failure.
fn write_error(key: &str, e: io::Error) -> UfsError {
    match e.kind() {
        io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty => UfsError::Invalid {
            path: key.to_owned(),
            reason: format!("other objects exist under `{key}/`"),
        },
        io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists => UfsError::Invalid {
            path: key.to_owned(),
            reason: "a parent of this key is itself an object".to_owned(),
        },
        _ => UfsError::Io {
            path: key.to_owned(),
            source: e,
        },
    }
}

/// Metadata of `key`, an object or a marker, at `file` (see [`path_of`]).
fn stat_blocking(key: &str, file: &Path) -> UfsResult<ObjectMeta> {
    if marker::is_marker(key) {
        return marker::stat(key, file);
    }
    let meta = fs::metadata(file).map_err(|e| UfsError::io(key, e))?;
    if !meta.is_file() {
        return Err(UfsError::NotFound { path: key.to_owned() });
    }
    Ok(ObjectMeta {
        metadata: Some(read_metadata(key, file)?),
        ..object_meta(key, &meta)
    })
}

/// `range` clipped to an object of `size` bytes.
fn clip(key: &str, range: &Range<u64>, size: u64) -> UfsResult<Range<u64>> {
    if range.start > range.end {
        let reason = format!("range {}..{} ends before it starts", range.start, range.end);
        return Err(UfsError::Invalid {
            path: key.to_owned(),
            reason,
        });
    }
    Ok(range.start.min(size)..range.end.min(size))
}

/// Opens the file of object `key` for reading, checking that it is at `version` when given;
/// returns it with its metadata.
fn open_versioned(key: &str, path: &Path, version: Option<&str>) -> UfsResult<(File, fs::Metadata)> {
    let file = File::open(path).map_err(|e| UfsError::io(key, e))?;
    let meta = file.metadata().map_err(|e| UfsError::io(key, e))?;
    if !meta.is_file() {
        return Err(UfsError::NotFound { path: key.to_owned() });
    }
    check_version(key, &version_of(&meta), version)?;
    Ok((file, meta))
}

fn read_range_blocking(key: &str, path: &Path, range: Range<u64>, version: Option<&str>) -> UfsResult<Bytes> {
    if marker::is_marker(key) {
        return marker::read_range(key, path, &range, version);
    }
    let (file, meta) = open_versioned(key, path, version)?;
    let before = version_of(&meta);
    let mismatch = |expected: &str| UfsError::VersionMismatch {
        path: key.to_owned(),
        expected: expected.to_owned(),
    };
    let range = clip(key, &range, meta.len())?;
    let len = usize::try_from(range.end - range.start).map_err(|_| UfsError::Invalid {
        path: key.to_owned(),
        reason: "range does not fit in memory".to_owned(),
    })?;
    let mut buf = vec![0u8; len];
    let read = read_fully_at(&file, &mut buf, range.start).map_err(|e| UfsError::io(key, e))?;
    if let Some(expected) = version {
        // Same open file: a rename over the path leaves its bytes alone, an in-place write shows.
        let after = file.metadata().map_err(|e| UfsError::io(key, e))?;
        if read < len || version_of(&after) != before {
            return Err(mismatch(expected));
        }
    }
    buf.truncate(read); // Without a version, a file that shrank meanwhile gives what is left.
    Ok(Bytes::from(buf))
}

/// Reads into `buf` from `offset` until it is full or the file ends; returns the bytes read.
fn read_fully_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Writes a new version of `key` at `target` atomically: `fill` writes a hidden temporary file in
/// the same directory, which is synced and renamed over the target.
///
/// A new version always gets a new tag: when it has the size of the file it replaces, its mtime
/// is made later than that file's (file timestamps advance in coarse ticks, so two writes in a row
/// often share one). Two writers racing on one key with same-size data within one tick can still
/// give two contents one tag.
fn write_atomically(
    key: &str,
    target: &Path,
    metadata: &Metadata,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> UfsResult<ObjectMeta> {
    let dir = target
        .parent()
        .expect("a validated key always has a parent directory (the root)");
    let mut tmp = temp_file_in(dir).map_err(|e| write_error(key, e))?;
    fill(tmp.as_file_mut()).map_err(|e| UfsError::io(key, e))?;
    write_metadata(tmp.path(), metadata).map_err(|e| UfsError::io(key, e))?;
    tmp.as_file().sync_all().map_err(|e| UfsError::io(key, e))?;
    ensure_new_version(tmp.as_file(), target).map_err(|e| UfsError::io(key, e))?;
    let file = tmp.persist(target).map_err(|e| write_error(key, e.error))?;
    sync_dir(dir);
    let meta = file.metadata().map_err(|e| UfsError::io(key, e))?;
    Ok(ObjectMeta {
        metadata: Some(metadata.clone()),
        ..object_meta(key, &meta)
    })
}

/// A hidden temporary file in `dir`, creating the directory. A concurrent delete may prune the
/// directory between the two steps, hence the retries. A directory made here is empty until the
/// file is in it: listings wait for that ([`settle`]).
fn temp_file_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let _changing = settle::changing();
    let mut attempts = 0;
    loop {
        // `create_dir_all` itself races with pruning: a directory it found existing may be gone
        // by the time it checks that it is one (`AlreadyExists`), or a parent it made may be
        // (`NotFound`). A file in the way fails the same way every time, so retrying is safe.
        match fs::create_dir_all(dir) {
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::AlreadyExists) && attempts < 8 => {
                attempts += 1;
                continue;
            }
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        match tempfile::Builder::new().prefix(TMP_PREFIX).tempfile_in(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 8 => attempts += 1,
            result => return result,
        }
    }
}

/// Moves the mtime of `new` past that of the file it replaces when both have the same size and
/// `new` is not already later, growing the step until the file system (whose timestamps may be
/// coarse) shows a later time.
fn ensure_new_version(new: &File, target: &Path) -> io::Result<()> {
    let Ok(old) = fs::metadata(target) else { return Ok(()) };
    if !old.is_file() || old.len() != new.metadata()?.len() {
        return Ok(());
    }
    let old_mtime = old.modified()?;
    for step_ns in [1, 1_000, 1_000_000, 1_000_000_000, 2_000_000_000] {
        if new.metadata()?.modified()? > old_mtime {
            return Ok(());
        }
        new.set_modified(old_mtime + Duration::from_nanos(step_ns))?;
    }
    Ok(())
}

/// Makes a rename in `dir` durable. Best effort: some file systems cannot sync a directory.
fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "could not sync directory");
    }
}

/// Creates or replaces object (or marker) `key` at `file` with `data` and `metadata`.
fn put_blocking(key: &str, file: &Path, data: &[u8], metadata: &Metadata) -> UfsResult<ObjectMeta> {
    validate_metadata(key, metadata)?;
    if marker::is_marker(key) {
        refuse_marker_metadata(key, metadata)?;
        return marker::put(key, file, data);
    }
    write_atomically(key, file, metadata, |f| f.write_all(data))
}

/// A marker is a directory here, which keeps no metadata.
fn refuse_marker_metadata(key: &str, metadata: &Metadata) -> UfsResult<()> {
    if metadata.is_empty() {
        return Ok(());
    }
    Err(UfsError::invalid(
        key,
        "a directory marker keeps no metadata in a local store",
    ))
}

fn copy_blocking(
    src_key: &str,
    src: &Path,
    dst_key: &str,
    dst: &Path,
    metadata: Option<&Metadata>,
) -> UfsResult<ObjectMeta> {
    if let Some(m) = metadata {
        validate_metadata(dst_key, m)?;
    }
    if marker::is_marker(src_key) || marker::is_marker(dst_key) {
        // A marker holds no data: the copy is empty, and only an empty object becomes a marker.
        if stat_blocking(src_key, src)?.size != 0 {
            return Err(UfsError::invalid(
                dst_key,
                "a directory marker cannot hold a copy of a non-empty object",
            ));
        }
        return put_blocking(dst_key, dst, &[], metadata.unwrap_or(&Metadata::new()));
    }
    let mut from = File::open(src).map_err(|e| UfsError::io(src_key, e))?;
    if !from.metadata().map_err(|e| UfsError::io(src_key, e))?.is_file() {
        return Err(UfsError::NotFound {
            path: src_key.to_owned(),
        });
    }
    let metadata = match metadata {
        Some(m) => m.clone(),
        None => read_metadata(src_key, src)?,
    };
    write_atomically(dst_key, dst, &metadata, |to| io::copy(&mut from, to).map(drop))
}

/// Removes the file (or marker) of `key`, then the directories this left empty, up to the root.
fn delete_blocking(root: &Path, key: &str, file: &Path) -> UfsResult<()> {
    // The directories this empties stay empty until pruned: listings wait for that.
    let _changing = settle::changing();
    if marker::is_marker(key) {
        return marker::delete(root, key, file);
    }
    match fs::remove_file(file) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => return Ok(()),
        // A directory is not an object: deleting a missing object succeeds.
        Err(e) if e.kind() == io::ErrorKind::IsADirectory || file.is_dir() => return Ok(()),
        Err(e) => return Err(UfsError::io(key, e)),
    }
    prune_empty_parents(root, file);
    Ok(())
}

/// Removes the parent directories of `removed` that are empty, up to the root (an empty directory
/// would list as a directory marker).
fn prune_empty_parents(root: &Path, removed: &Path) {
    let mut dir = removed.parent();
    while let Some(d) = dir.filter(|d| *d != root && d.starts_with(root)) {
        if fs::remove_dir(d).is_err() {
            break; // Not empty (or already gone): its parents are not empty either.
        }
        dir = d.parent();
    }
}

fn list_blocking(root: &Path, req: &ListRequest) -> UfsResult<ListPage> {
    let keys = walk::SortedKeys::new(root, req);
    let page = listing::paginate(keys, req).map_err(|e| UfsError::io(&req.prefix, e))?;
    let mut objects = Vec::with_capacity(page.objects.len());
    for key in page.objects {
        match stat_blocking(&key, &path_of(root, &key)) {
            // Unlike S3's, a local listing carries the user metadata: reading it costs one
            // `getxattr` per file, where `stat` after the listing would cost a round trip per file.
            Ok(meta) => objects.push(meta),
            Err(UfsError::NotFound { .. }) => {} // Deleted since the walk.
            Err(e) => return Err(e),
        }
    }
    Ok(ListPage {
        objects,
        common_prefixes: page.common_prefixes,
        next_continuation: page.next_continuation,
    })
}

#[async_trait]
impl UnderStore for LocalUnderStore {
    async fn stat(&self, path: &str) -> UfsResult<ObjectMeta> {
        let (key, file) = (path.to_owned(), self.file_of(path)?);
        blocking(move || stat_blocking(&key, &file)).await
    }

    async fn read_range(&self, path: &str, range: Range<u64>, version: Option<&str>) -> UfsResult<Bytes> {
        let (key, file) = (path.to_owned(), self.file_of(path)?);
        let version = version.map(str::to_owned);
        blocking(move || read_range_blocking(&key, &file, range, version.as_deref())).await
    }

    async fn list(&self, req: &ListRequest) -> UfsResult<ListPage> {
        let (root, req) = (self.root.clone(), req.clone());
        blocking(move || list_blocking(&root, &req)).await
    }

    async fn put_with(&self, path: &str, data: Bytes, metadata: &Metadata) -> UfsResult<ObjectMeta> {
        let (key, file, metadata) = (path.to_owned(), self.file_of(path)?, metadata.clone());
        blocking(move || put_blocking(&key, &file, &data, &metadata)).await
    }

    async fn create_multipart_with(&self, path: &str, metadata: &Metadata) -> UfsResult<String> {
        validate_key(path)?;
        validate_metadata(path, metadata)?;
        if marker::is_marker(path) {
            let reason = "a key ending in `/` is a directory marker, which holds no data in a local store";
            return Err(UfsError::invalid(path, reason));
        }
        let (root, key, metadata) = (self.root.clone(), path.to_owned(), metadata.clone());
        blocking(move || multipart::create(&root, &key, &metadata)).await
    }

    async fn upload_part(
        &self,
        path: &str,
        upload_id: &str,
        part_number: u32,
        data: Bytes,
    ) -> UfsResult<CompletedPart> {
        let upload = multipart::Upload::open(&self.root, path, upload_id)?;
        blocking(move || upload.put_part(part_number, &data)).await
    }

    async fn upload_part_copy(
        &self,
        path: &str,
        upload_id: &str,
        part_number: u32,
        src: &str,
        range: Range<u64>,
        src_version: Option<&str>,
    ) -> UfsResult<CompletedPart> {
        let upload = multipart::Upload::open(&self.root, path, upload_id)?;
        let (src_key, src_file) = (src.to_owned(), self.file_of(src)?);
        let src_version = src_version.map(str::to_owned);
        blocking(move || upload.copy_part(part_number, &src_key, &src_file, range, src_version.as_deref())).await
    }

    async fn complete_multipart(
        &self,
        path: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> UfsResult<ObjectMeta> {
        let upload = multipart::Upload::open(&self.root, path, upload_id)?;
        let target = self.file_of(path)?;
        blocking(move || upload.complete(&target, &parts)).await
    }

    async fn abort_multipart(&self, path: &str, upload_id: &str) -> UfsResult<()> {
        let upload = multipart::Upload::open(&self.root, path, upload_id)?;
        blocking(move || upload.abort()).await
    }

    async fn delete(&self, path: &str) -> UfsResult<()> {
        let (root, key, file) = (self.root.clone(), path.to_owned(), self.file_of(path)?);
        blocking(move || delete_blocking(&root, &key, &file)).await
    }

    async fn copy_with(&self, src: &str, dst: &str, metadata: Option<&Metadata>) -> UfsResult<ObjectMeta> {
        let (src_key, src_file) = (src.to_owned(), self.file_of(src)?);
        let (dst_key, dst_file) = (dst.to_owned(), self.file_of(dst)?);
        let metadata = metadata.cloned();
        blocking(move || copy_blocking(&src_key, &src_file, &dst_key, &dst_file, metadata.as_ref())).await
    }
}

#[cfg(test)]
mod tests;
