//! Directory markers of the local store: a key ending in `/` is the directory itself.
//!
//! S3 tools mark an empty "directory" with an empty object whose key ends in `/` (`a/b/`). A file
//! system has real directories, so the local store keeps no marker file: `put("a/b/", empty)`
//! creates the directory `a/b`, `stat("a/b/")` reports any existing directory as an object of size
//! 0, and `delete("a/b/")` removes the directory when it is empty. Listings show a directory as the
//! marker object only while it is empty (see [`super::walk`]): a file system does not record
//! whether a marker was put on a directory that also holds objects.

use std::fs;
use std::io;
use std::ops::Range;
use std::path::Path;

use bytes::Bytes;

use super::{check_version, clip, mtime_ns, prune_empty_parents, sync_dir, write_error};
use crate::{ObjectMeta, UfsError, UfsResult};

/// Whether `key` names a directory marker.
pub(super) fn is_marker(key: &str) -> bool {
    key.ends_with('/')
}

/// The version tag of a marker: `0-mtime_ns` of its directory (the size of an object is 0).
fn version_of(meta: &fs::Metadata) -> String {
    format!("0-{}", mtime_ns(meta))
}

fn marker_meta(key: &str, meta: &fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        path: key.to_owned(),
        size: 0,
        version: version_of(meta),
        mtime: meta.modified().ok(),
        metadata: Some(crate::Metadata::new()),
    }
}

/// The marker `key` of directory `dir`: there when the directory exists.
pub(super) fn stat(key: &str, dir: &Path) -> UfsResult<ObjectMeta> {
    let meta = fs::metadata(dir).map_err(|e| UfsError::io(key, e))?;
    if !meta.is_dir() {
        return Err(UfsError::NotFound { path: key.to_owned() });
    }
    Ok(marker_meta(key, &meta))
}

/// A read of a marker: always empty, once the marker and its version are checked.
pub(super) fn read_range(key: &str, dir: &Path, range: &Range<u64>, version: Option<&str>) -> UfsResult<Bytes> {
    let meta = stat(key, dir)?;
    check_version(key, &meta.version, version)?;
    clip(key, range, 0)?;
    Ok(Bytes::new())
}

/// Creates the directory of marker `key`, which holds no data.
pub(super) fn put(key: &str, dir: &Path, data: &[u8]) -> UfsResult<ObjectMeta> {
    if !data.is_empty() {
        let reason = "a key ending in `/` is a directory marker, which holds no data in a local store";
        return Err(UfsError::invalid(key, reason));
    }
    // Each parent made on the way is empty until its child is: listings wait for the whole chain.
    let changing = super::settle::changing();
    let made = fs::create_dir_all(dir);
    drop(changing);
    match made {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let object = key.trim_end_matches('/');
            let reason = format!("the object `{object}` exists, and a file system cannot also hold `{key}`");
            return Err(UfsError::invalid(key, reason));
        }
        Err(e) => return Err(write_error(key, e)),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent);
    }
    stat(key, dir)
}

/// Removes the directory of marker `key` when it is empty, then the directories this left empty.
/// A missing marker, or a directory that still holds something, is left as it is (S3 deletes the
/// marker object and keeps the objects under it).
pub(super) fn delete(root: &Path, key: &str, dir: &Path) -> UfsResult<()> {
    match fs::remove_dir(dir) {
        Ok(()) => {
            prune_empty_parents(root, dir);
            Ok(())
        }
        Err(e) if is_left_alone(&e) => Ok(()),
        Err(e) => Err(UfsError::io(key, e)),
    }
}

/// Whether removing a marker's directory failed because there is nothing to remove, or because
/// the directory is not empty.
fn is_left_alone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::DirectoryNotEmpty
    )
}
