//! Names and attributes: lookup, getattr, setattr.
//!
//! hoard stores files only; directories are what listings imply. A name is a file when `stat`
//! finds it, and a directory when listing `name/` finds anything (or when it is a mount, or a
//! directory marker its parent lists). Both questions go out at once, so a lookup costs one
//! round trip to the mount's coordinator.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use bytes::Bytes;
use fuser::{Errno, FileAttr};
use hoard_client::path::HoardPath;
use hoard_client::{FileMeta, ListEntry};

use super::Inner;
use crate::attr::{dir_attr, file_attr};
use crate::dir::{PAGE_ENTRIES, child_of};
use crate::errno::{Op, errno};
use crate::inode::{Kind, child_path};
use crate::posix::Posix;

/// What a path is, as hoard answers now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// A file (or symbolic link) of `size` bytes modified at `mtime_ms`, with the attributes
    /// its metadata holds.
    File { size: u64, mtime_ms: u64, posix: Posix },
    /// A directory.
    Dir,
}

impl Found {
    /// A file as hoard's metadata describes it.
    pub(super) fn file(meta: &FileMeta) -> Found {
        Found::File {
            size: meta.size,
            mtime_ms: meta.mtime_ms,
            posix: meta.metadata.as_deref().map(Posix::from_pairs).unwrap_or_default(),
        }
    }
}

/// Listing pages a lookup reads through to find an empty directory in its parent.
const PARENT_SCAN_PAGES: usize = 100;

impl Inner {
    pub(super) async fn lookup(&self, parent: u64, name: &str) -> Result<FileAttr, Errno> {
        let parent = self.dir_node(parent)?;
        let path = child_path(&parent.path, name);
        let found = self.resolve(&path).await?;
        Ok(self.attr_of(&path, found))
    }

    /// The inode and attributes of `path`, now known to be `found`, for an entry reply: the
    /// inode's lookup count goes up by one (see `crate::inode`).
    pub(super) fn attr_of(&self, path: &str, found: Found) -> FileAttr {
        match found {
            Found::Dir => {
                let ino = self.inodes.lock().entry(path, Kind::Dir);
                dir_attr(ino, self.started, &self.config)
            }
            Found::File { size, mtime_ms, posix } => {
                let ino = self.inodes.lock().entry(path, Kind::File);
                file_attr(ino, size, mtime_ms, SystemTime::now(), &posix, &self.config)
            }
        }
    }

    /// What `path` is.
    pub(super) async fn resolve(&self, path: &str) -> Result<Found, Errno> {
        if let Some(mount) = path.strip_prefix('/').filter(|m| !m.contains('/')) {
            // A top-level name of the root of all mounts is a mount or nothing.
            return if self.client.mounts().iter().any(|m| m.name == mount) {
                Ok(Found::Dir)
            } else {
                Err(Errno::ENOENT)
            };
        }
        let known = self.inodes.lock().find(path);
        if let Some((ino, Kind::File)) = known
            && let Some((size, posix)) = self.handles.writing(ino)
        {
            // Being written through this mount, not yet published.
            return Ok(Found::File {
                size,
                mtime_ms: 0,
                posix,
            });
        }
        let (stat, list) = tokio::join!(self.client.stat(path), self.client.list_page(path, false, None, 1));
        match (stat, list) {
            (Ok(meta), _) => Ok(Found::file(&meta)),
            (_, Ok(page)) if !page.entries.is_empty() => Ok(Found::Dir),
            (Err(e), _) if !e.is_not_found() => Err(errno(&e, Op::Other)),
            (_, Err(e)) if !e.is_not_found() => Err(errno(&e, Op::Other)),
            // An empty directory's own listing holds its marker. A directory this mount knows
            // whose listing is empty for a moment (its last entry deleted in the overlay, not yet
            // in a local under-store) is looked for in its parent's listing.
            _ if matches!(known, Some((_, Kind::Dir))) && self.listed_in_parent(path).await? => Ok(Found::Dir),
            _ => Err(Errno::ENOENT),
        }
    }

    /// Whether the parent's listing has `path` as a directory. Reads the parent's pages in key
    /// order up to where the name would be (at most [`PARENT_SCAN_PAGES`]).
    async fn listed_in_parent(&self, path: &str) -> Result<bool, Errno> {
        let Some((parent, name)) = path.rsplit_once('/') else {
            return Ok(false);
        };
        let prefix = HoardPath::parse(parent).map_err(|e| errno(&e, Op::Other))?.dir_prefix();
        let marker = format!("{prefix}{name}/");
        let mut continuation = None;
        for _ in 0..PARENT_SCAN_PAGES {
            let page = self
                .client
                .list_page(parent, false, continuation, PAGE_ENTRIES)
                .await
                .map_err(|e| errno(&e, Op::Other))?;
            for entry in &page.entries {
                if let Some((n, Kind::Dir, ..)) = child_of(&prefix, entry)
                    && n == name
                {
                    return Ok(true);
                }
                let key = match entry {
                    ListEntry::File(f) => f.path.as_str(),
                    ListEntry::Prefix(p) => p.as_str(),
                };
                if key > marker.as_str() {
                    return Ok(false);
                }
            }
            match page.next_continuation {
                Some(c) => continuation = Some(c),
                None => return Ok(false),
            }
        }
        Ok(false)
    }

    pub(super) async fn getattr(&self, ino: u64, fh: Option<u64>) -> Result<FileAttr, Errno> {
        // An open handle answers for the file it has open (fstat), even after an unlink.
        if let Some(handle) = fh.and_then(|fh| self.handles.get(fh)).filter(|h| h.ino == ino) {
            if handle.writer.is_some() {
                let size = handle.size.load(Ordering::Acquire);
                return Ok(file_attr(
                    ino,
                    size,
                    0,
                    SystemTime::now(),
                    &handle.attrs.posix(),
                    &self.config,
                ));
            }
            if let Some((_, file)) = handle.reader.get() {
                let meta = file.meta();
                return Ok(self.file_attr_of(ino, meta));
            }
        }
        let node = self.node(ino)?;
        if node.kind == Kind::Dir {
            return Ok(dir_attr(ino, self.started, &self.config));
        }
        if let Some((size, posix)) = self.handles.writing(ino) {
            return Ok(file_attr(ino, size, 0, SystemTime::now(), &posix, &self.config));
        }
        let meta = self.client.stat(&node.path).await.map_err(|e| errno(&e, Op::Other))?;
        Ok(self.file_attr_of(ino, &meta))
    }

    /// The attributes of inode `ino`, a file hoard describes as `meta`.
    fn file_attr_of(&self, ino: u64, meta: &FileMeta) -> FileAttr {
        let posix = meta.metadata.as_deref().map(Posix::from_pairs).unwrap_or_default();
        file_attr(ino, meta.size, meta.mtime_ms, self.started, &posix, &self.config)
    }

    /// Truncate (to 0, or to the size the file has), and change mode, owner and modification
    /// time (`change`): kept in the file's metadata. A file open for writing through this mount
    /// gets them when it is published. Directories keep none (hoard has no directory objects
    /// to hold them): the change is accepted and not kept.
    pub(super) async fn setattr(
        &self,
        ino: u64,
        size: Option<u64>,
        change: Option<Posix>,
        fh: Option<u64>,
    ) -> Result<FileAttr, Errno> {
        self.writable()?;
        let node = self.node(ino)?;
        if let Some(size) = size {
            if node.kind == Kind::Dir {
                return Err(Errno::EISDIR);
            }
            self.truncate(ino, &node.path, size, fh).await?;
        }
        if let Some(change) = change {
            if node.kind == Kind::Dir {
                tracing::debug!(path = node.path, "directories keep no mode, owner or times");
            } else {
                self.change_attrs(ino, &node.path, change).await?;
            }
        }
        self.getattr(ino, fh).await
    }

    /// Keep `change` in the metadata of file `path`: on its open write handles when it is
    /// being written through this mount, else on the file in hoard.
    async fn change_attrs(&self, ino: u64, path: &str, change: Posix) -> Result<(), Errno> {
        let writers: Vec<_> = self
            .handles
            .of_inode(ino)
            .into_iter()
            .filter(|h| h.writer.is_some())
            .collect();
        let mut pending = false;
        for handle in &writers {
            let w = handle.writer.as_ref().expect("filtered on writer").lock().await;
            if w.needs_commit() {
                handle.attrs.update(change);
                pending = true;
            }
        }
        if pending {
            return Ok(());
        }
        let meta = self.client.stat(path).await.map_err(|e| errno(&e, Op::Other))?;
        let current = meta.metadata.unwrap_or_default();
        let changed = Posix::from_pairs(&current).updated(change).merged_into(&current);
        self.client
            .set_metadata(path, &changed)
            .await
            .map_err(|e| errno(&e, Op::WriteFile))?;
        // Later opens for writing start from the new attributes.
        for handle in writers {
            handle.attrs.update(change);
            let _ = handle.attrs.take_changed();
        }
        Ok(())
    }

    async fn truncate(&self, ino: u64, path: &str, size: u64, fh: Option<u64>) -> Result<(), Errno> {
        self.cached_versions.lock().remove(&ino);
        let writing = fh.and_then(|fh| self.handles.get(fh)).filter(|h| h.writer.is_some());
        if let Some(handle) = writing {
            let mut w = handle.writer.as_ref().expect("filtered on writer").lock().await;
            if size == 0 {
                w.truncate();
                handle.size.store(0, Ordering::Release);
            } else if size != w.size {
                tracing::debug!(path, size, "refusing a truncate to a size other than 0");
                return Err(Errno::ENOTSUP);
            }
            return Ok(());
        }
        let meta = self.client.stat(path).await.map_err(|e| errno(&e, Op::Other))?;
        if size == meta.size {
            return Ok(());
        }
        if size != 0 {
            tracing::debug!(path, size, "refusing a truncate to a size other than 0");
            return Err(Errno::ENOTSUP);
        }
        self.client
            .put(path, Bytes::new())
            .await
            .map(drop)
            .map_err(|e| errno(&e, Op::WriteFile))
    }
}
