//! Under-file systems ("under-stores"): where hoard's data really lives.
//!
//! hoard caches objects of an under-store and, for writes, persists to it. This crate is the only
//! one that knows the object-store SDK. It offers one trait, [`UnderStore`], and two real
//! implementations: [`S3UnderStore`] (Amazon S3 or any S3-compatible server, through `aws-sdk-s3`)
//! and [`LocalUnderStore`] (a directory of the local file system). [`open_uri`] builds the right
//! one from a mount's URI (`s3://bucket/prefix` or `file:///dir`).
//!
//! Paths are object keys relative to the mount's root, `/`-separated, without a leading `/`
//! (`images/0001.jpg`). Every object carries a *version tag*: the S3 ETag, or `size-mtime` for a
//! local file. A changed tag is a different object, and [`UnderStore::read_range`] refuses to
//! return bytes of another version than the one asked for, so a cache never mixes two versions.
//!
//! # Example
//! ```
//! # async fn demo() -> hoard_ufs::UfsResult<()> {
//! use hoard_ufs::{LocalUnderStore, UnderStore};
//! let dir = std::env::temp_dir().join("hoard-ufs-doc");
//! let store = LocalUnderStore::new(&dir)?;
//! store.put("greeting.txt", bytes::Bytes::from_static(b"hello")).await?;
//! let meta = store.stat("greeting.txt").await?;
//! let bytes = store.read_range("greeting.txt", 1..4, Some(&meta.version)).await?;
//! assert_eq!(&bytes[..], b"ell");
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//! - `testing`: the test doubles [`InMemoryStore`] and [`UnreliableStore`], and the
//!   [`conformance`] suite every implementation runs.
#![deny(clippy::undocumented_unsafe_blocks)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod local;
mod metadata;
mod parts;
mod s3;
mod uri;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
#[cfg(any(test, feature = "testing"))]
mod in_memory;
#[cfg(any(test, feature = "testing"))]
mod unreliable;

use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

pub use error::{UfsError, UfsResult};
#[cfg(any(test, feature = "testing"))]
pub use in_memory::InMemoryStore;
pub use local::LocalUnderStore;
pub use metadata::{MAX_METADATA_BYTES, Metadata, validate_metadata};
pub use parts::MIN_PART_SIZE;
pub use s3::{S3Config, S3UnderStore};
#[cfg(any(test, feature = "testing"))]
pub use unreliable::UnreliableStore;
pub use uri::{UfsUri, open_uri};

/// What an under-store knows of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Key relative to the store's root, without a leading `/`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Version tag: the S3 ETag (quotes stripped), or `size-mtime_ns` for a local file.
    pub version: String,
    /// Last modification time, when the store reports one.
    pub mtime: Option<SystemTime>,
    /// The object's user metadata: `Some` from [`UnderStore::stat`] and from writes; in
    /// listings `None` where the store lists none (S3), `Some` where it does (a local directory).
    pub metadata: Option<Metadata>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects whose keys start with the prefix (and, with a delimiter, have no delimiter after it),
    /// in lexicographic key order.
    pub objects: Vec<ObjectMeta>,
    /// With a delimiter: the distinct key prefixes up to and including the first delimiter after
    /// the listed prefix ("directories"), in lexicographic order.
    pub common_prefixes: Vec<String>,
    /// Present when more entries follow: pass it back as `continuation` to get them.
    pub next_continuation: Option<String>,
}

impl ObjectMeta {
    /// Modification time in milliseconds since the Unix epoch; 0 when unknown.
    pub fn mtime_ms(&self) -> u64 {
        let since_epoch = self.mtime.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        since_epoch.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// One entry of a listing page: an object or a common prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListItem {
    /// An object.
    Object(ObjectMeta),
    /// A common prefix ("directory"), ending with the delimiter.
    Prefix(String),
}

impl ListItem {
    /// The key (or prefix) the item sorts by.
    pub fn key(&self) -> &str {
        match self {
            ListItem::Object(o) => &o.path,
            ListItem::Prefix(p) => p,
        }
    }
}

impl ListPage {
    /// Objects and common prefixes merged into one list in key order.
    pub fn into_items(self) -> Vec<ListItem> {
        let mut items: Vec<ListItem> = self.objects.into_iter().map(ListItem::Object).collect();
        items.extend(self.common_prefixes.into_iter().map(ListItem::Prefix));
        items.sort_by(|a, b| a.key().cmp(b.key()));
        items
    }
}

/// A listing request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// Only keys that start with this string.
    pub prefix: String,
    /// Group keys by this delimiter after the prefix (usually `/`).
    pub delimiter: Option<String>,
    /// Continue after a previous page.
    pub continuation: Option<String>,
    /// At most this many entries (objects + common prefixes); 0 means the store's default (1000).
    pub max_keys: u32,
}

/// A part of a multipart upload, as returned by [`UnderStore::upload_part`] and
/// [`UnderStore::upload_part_copy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// 1-based part number.
    pub part_number: u32,
    /// The part's tag (ETag) that completing the upload needs.
    pub tag: String,
}

/// An object store that hoard caches.
///
/// Implementations: [`S3UnderStore`], [`LocalUnderStore`], and for unit tests [`InMemoryStore`]
/// (feature `testing`). All must pass [`conformance`].
///
/// # Directory markers
/// A key ending in `/` whose object is empty (`a/b/`) is a *directory marker*, S3's convention for
/// an empty directory. Every store accepts `put("a/b/", empty)`, and then behaves as S3 does:
/// `stat` and `read_range` see an object of size 0, a listing without delimiter shows the object
/// `a/b/`, a listing of prefix `a/` with delimiter `/` shows the common prefix `a/b/`, a listing of
/// prefix `a/b/` with delimiter `/` shows the object `a/b/`, and `delete("a/b/")` removes it.
///
/// [`LocalUnderStore`] stores a marker as the directory itself, which brings the limits of a file
/// system: a marker cannot hold data, any existing directory stats as a marker, only *empty*
/// directories are listed as markers, and deleting the last object under a directory removes the
/// directory, marker included. The conformance suite checks only what S3 and the file system
/// agree on.
#[async_trait]
pub trait UnderStore: Send + Sync + std::fmt::Debug + 'static {
    /// Size and version of one object.
    ///
    /// # Errors
    /// [`UfsError::NotFound`] when there is no such object.
    async fn stat(&self, path: &str) -> UfsResult<ObjectMeta>;

    /// Bytes `range` of an object. The range is clipped to the object's size (a range starting
    /// at or past the end gives an empty result). With `version`, the bytes are those of that
    /// version or the call fails.
    ///
    /// # Errors
    /// [`UfsError::NotFound`]; [`UfsError::VersionMismatch`] when the object's version is no
    /// longer `version`.
    async fn read_range(&self, path: &str, range: Range<u64>, version: Option<&str>) -> UfsResult<Bytes>;

    /// One page of the objects under a prefix.
    async fn list(&self, req: &ListRequest) -> UfsResult<ListPage>;

    /// Create or replace an object with `data` and no user metadata; returns its new metadata.
    async fn put(&self, path: &str, data: Bytes) -> UfsResult<ObjectMeta> {
        self.put_with(path, data, &Metadata::new()).await
    }

    /// Create or replace an object with `data` and user `metadata`; returns its new metadata.
    ///
    /// # Errors
    /// [`UfsError::Invalid`] for metadata [`validate_metadata`] refuses; [`UfsError::Io`] (of kind
    /// `Unsupported`) when the store cannot keep metadata (a local directory on a file system
    /// without user extended attributes) and `metadata` is not empty.
    async fn put_with(&self, path: &str, data: Bytes, metadata: &Metadata) -> UfsResult<ObjectMeta>;

    /// Start a multipart upload to `path`, of an object without user metadata; returns the
    /// upload id.
    async fn create_multipart(&self, path: &str) -> UfsResult<String> {
        self.create_multipart_with(path, &Metadata::new()).await
    }

    /// Start a multipart upload to `path` of an object that will carry user `metadata`; returns
    /// the upload id. Errors as for [`UnderStore::put_with`].
    async fn create_multipart_with(&self, path: &str, metadata: &Metadata) -> UfsResult<String>;

    /// Upload part `part_number` (1-based) of an upload.
    async fn upload_part(&self, path: &str, upload_id: &str, part_number: u32, data: Bytes)
    -> UfsResult<CompletedPart>;

    /// Upload part `part_number` of an upload as a server-side copy of bytes `range` of the object
    /// `src` (S3 UploadPartCopy), which must be at version `src_version` when given.
    ///
    /// The range must be non-empty and lie within the source. Parts made this way follow the rules
    /// of uploaded parts: every part but the last must be at least [`MIN_PART_SIZE`] bytes on S3.
    /// Outside the source, stores differ: the local and in-memory stores refuse the range, Garage
    /// clips its end to the source's size, AWS S3 refuses it. Garage also refuses (400
    /// `InvalidRequest`) a source small enough to be stored inline (a few KiB), whatever the range.
    ///
    /// # Errors
    /// [`UfsError::NotFound`] for a missing source (or upload), [`UfsError::VersionMismatch`] when
    /// the source changed, [`UfsError::Invalid`] for an empty range, a bad part number, or (local
    /// and in-memory stores) a range past the source's end.
    async fn upload_part_copy(
        &self,
        path: &str,
        upload_id: &str,
        part_number: u32,
        src: &str,
        range: Range<u64>,
        src_version: Option<&str>,
    ) -> UfsResult<CompletedPart>;

    /// Finish an upload from its parts, in part-number order; returns the new object's metadata.
    async fn complete_multipart(&self, path: &str, upload_id: &str, parts: Vec<CompletedPart>)
    -> UfsResult<ObjectMeta>;

    /// Abandon an upload and free its parts.
    async fn abort_multipart(&self, path: &str, upload_id: &str) -> UfsResult<()>;

    /// Delete an object. Deleting a missing object succeeds (as S3 does).
    async fn delete(&self, path: &str) -> UfsResult<()>;

    /// Server-side copy of `src` to `dst`, user metadata included; returns the new object's
    /// metadata.
    async fn copy(&self, src: &str, dst: &str) -> UfsResult<ObjectMeta> {
        self.copy_with(src, dst, None).await
    }

    /// Server-side copy of `src` to `dst`, with the source's user metadata (`None`) or with
    /// `metadata` instead. `src` may be `dst`: with new metadata, that changes the metadata of an
    /// object in place (S3's `CopyObject` with the `REPLACE` directive). Errors as for
    /// [`UnderStore::put_with`].
    async fn copy_with(&self, src: &str, dst: &str, metadata: Option<&Metadata>) -> UfsResult<ObjectMeta>;
}
