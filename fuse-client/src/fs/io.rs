//! open, create, read, write, flush, fsync and release.
//!
//! Durability follows the mount's write mode (docs/semantics.md), with these points:
//! - `close(2)` (FUSE `flush`) in the process that opened the file publishes it: the hoard
//!   writer is closed, and every client sees the file when `close` returns (an error from the
//!   commit is `close`'s error). A `close` in another process (a child holding an inherited
//!   descriptor) only makes the bytes durable.
//! - `fsync` makes the bytes written so far durable (`Writer::flush`) without ending the writer.
//! - `release` (the kernel dropping the last reference) publishes whatever is still unpublished.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use bytes::BytesMut;
use fuser::{Errno, FileAttr, FopenFlags};
use hoard_client::{Metadata, OpenFile};

use super::{Inner, MAX_IO_BYTES};

/// Read buffers kept for reuse: one per read in flight, as many as the kernel sends at once.
const KEPT_READ_BUFFERS: usize = 64;
use crate::attr::file_attr;
use crate::errno::{Op, errno};
use crate::handles::{FileHandle, WriteHandle};
use crate::inode::{Kind, child_path};
use crate::posix::Posix;

impl Inner {
    pub(super) async fn open(&self, ino: u64, flags: i32, pid: u32) -> Result<(u64, FopenFlags), Errno> {
        let node = self.node(ino)?;
        if node.kind == Kind::Dir {
            return Err(Errno::EISDIR);
        }
        let pid = tgid(pid);
        if flags & libc::O_ACCMODE == libc::O_RDONLY {
            let file = self.client.open(&node.path).await.map_err(|e| errno(&e, Op::Other))?;
            let keep = self.keep_cache(ino, &file.meta().version);
            let handle = FileHandle::new(ino, node.path.clone(), pid, None);
            handle.reader.init(node.path, file);
            return Ok((self.handles.insert(handle), self.open_flags(keep)));
        }
        self.writable()?;
        let truncate = flags & libc::O_TRUNC != 0;
        let append = flags & libc::O_APPEND != 0;
        // A replaced file keeps its mode and owner, as a truncated local file does.
        let (size, metadata) = self.current(ino, &node.path).await?;
        self.cached_versions.lock().remove(&ino);
        let writer = WriteHandle::new(if truncate { 0 } else { size }, truncate, append, false);
        let handle = FileHandle::new(ino, node.path, pid, Some(writer)).with_attrs(metadata);
        let fh = self.handles.insert(handle);
        Ok((fh, self.open_flags(false)))
    }

    pub(super) async fn create(
        &self,
        parent: u64,
        name: &str,
        flags: i32,
        owner: Posix,
        pid: u32,
    ) -> Result<(FileAttr, u64, FopenFlags), Errno> {
        self.writable()?;
        let parent = self.dir_node(parent)?;
        if parent.path.is_empty() {
            // The root of all mounts holds only the mounts.
            return Err(Errno::EPERM);
        }
        let path = child_path(&parent.path, name);
        let exclusive = flags & libc::O_EXCL != 0;
        if exclusive {
            match self.resolve(&path).await {
                Ok(_) => return Err(Errno::EEXIST),
                Err(e) if e == Errno::ENOENT => {}
                Err(e) => return Err(e),
            }
        }
        // The reply is an entry (the kernel counts a lookup).
        let ino = self.inodes.lock().entry(&path, Kind::File);
        self.cached_versions.lock().remove(&ino);
        let writer = WriteHandle::new(0, true, flags & libc::O_APPEND != 0, exclusive);
        let handle = FileHandle::new(ino, path, tgid(pid), Some(writer)).with_attrs(owner.merged_into(&[]));
        let fh = self.handles.insert(handle);
        let attr = file_attr(ino, 0, 0, SystemTime::now(), &owner, &self.config);
        Ok((attr, fh, self.open_flags(false)))
    }

    /// Bytes `[offset, offset + len)` of the handle's file, in a buffer to hand back with
    /// [`Inner::reuse_read_buffer`] once replied.
    pub(super) async fn read(&self, fh: u64, offset: u64, len: u32) -> Result<BytesMut, Errno> {
        let handle = self.handles.get(fh).ok_or(Errno::EBADF)?;
        if let Some(w) = &handle.writer {
            let w = w.lock().await;
            if w.has_unpublished_bytes() {
                tracing::debug!(path = handle.path, "refusing to read bytes not yet published");
                return Err(Errno::ENOTSUP);
            }
            if w.truncated() {
                return Ok(BytesMut::new());
            }
        }
        let (path, file) = match handle.reader.get() {
            Some(reader) => reader,
            None => {
                let file = self.client.open(&handle.path).await.map_err(|e| errno(&e, Op::Other))?;
                handle.reader.init(handle.path.clone(), file)
            }
        };
        let failed = match file.read_into(offset, u64::from(len), self.read_buffer()).await {
            Ok(bytes) => return Ok(bytes),
            Err(e) => errno(&e, Op::Other),
        };
        if failed != Errno::ENOENT && failed != Errno::ESTALE {
            return Err(failed);
        }
        match self.follow_rename(&handle, &path, &file).await {
            Some(moved) => moved
                .read_into(offset, u64::from(len), self.read_buffer())
                .await
                .map_err(|e| errno(&e, Op::Other)),
            None => Err(failed),
        }
    }

    /// An empty buffer for a read: a used one when there is one.
    fn read_buffer(&self) -> BytesMut {
        self.read_buffers
            .lock()
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(MAX_IO_BYTES as usize))
    }

    /// A read's buffer, replied: kept for the next read (up to [`KEPT_READ_BUFFERS`]).
    pub(super) fn reuse_read_buffer(&self, mut buf: BytesMut) {
        buf.clear();
        let mut kept = self.read_buffers.lock();
        if buf.capacity() >= MAX_IO_BYTES as usize && kept.len() < KEPT_READ_BUFFERS {
            kept.push(buf);
        }
    }

    /// The file `handle` reads, reopened at its inode's path when a rename through this mount
    /// moved it from `opened` (where it is gone now). `None` when it was not moved, or the file
    /// at the new path is not the same size (then it was replaced: the read fails as before).
    async fn follow_rename(
        &self,
        handle: &FileHandle,
        opened: &str,
        file: &OpenFile,
    ) -> Option<std::sync::Arc<OpenFile>> {
        let now = self.node(handle.ino).ok()?.path;
        if now == opened {
            return None;
        }
        let moved = self.client.open(&now).await.ok()?;
        if moved.meta().size != file.meta().size {
            tracing::debug!(from = opened, to = now, "an open file was replaced after its rename");
            return None;
        }
        tracing::debug!(from = opened, to = now, "an open file reads on at its new name");
        Some(handle.reader.moved(now, moved))
    }

    pub(super) async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<(), Errno> {
        let handle = self.handles.get(fh).ok_or(Errno::EBADF)?;
        let mut w = handle.writer.as_ref().ok_or(Errno::EBADF)?.lock().await;
        handle.attrs.on_write();
        let size = w.write(&self.client, &handle.path, &handle.attrs, offset, data).await?;
        handle.size.store(size, Ordering::Release);
        Ok(())
    }

    pub(super) async fn flush(&self, fh: u64, pid: u32) -> Result<(), Errno> {
        let Some(handle) = self.handles.get(fh) else {
            return Ok(());
        };
        let Some(w) = &handle.writer else {
            return Ok(());
        };
        let mut w = w.lock().await;
        let result = if handle.open_pid == tgid(pid) {
            w.commit(&self.client, &handle.path, &handle.attrs).await
        } else {
            w.sync(&self.client, &handle.path, &handle.attrs).await
        };
        handle.size.store(w.size, Ordering::Release);
        result?;
        self.publish_attrs(&handle).await
    }

    /// Attributes changed while the handle was open, once its file is published: set them on
    /// the file (a create already carried them).
    async fn publish_attrs(&self, handle: &FileHandle) -> Result<(), Errno> {
        let Some(metadata) = handle.attrs.take_changed() else {
            return Ok(());
        };
        match self.client.set_metadata(&handle.path, &metadata).await {
            Ok(_) => Ok(()),
            // Not published yet (a close in another process than the writer's): the writer's
            // own close sets them.
            Err(e) if e.is_not_found() => {
                handle.attrs.still_changed();
                Ok(())
            }
            Err(e) => Err(errno(&e, Op::WriteFile)),
        }
    }

    pub(super) async fn fsync(&self, fh: u64) -> Result<(), Errno> {
        let handle = self.handles.get(fh).ok_or(Errno::EBADF)?;
        match &handle.writer {
            Some(w) => w.lock().await.sync(&self.client, &handle.path, &handle.attrs).await,
            None => Ok(()),
        }
    }

    /// The last reference is gone: publish what is still unpublished. The kernel does not wait
    /// for this answer, so a failure can only be logged.
    pub(super) async fn release(&self, fh: u64) {
        let Some(handle) = self.handles.get(fh) else {
            return;
        };
        if let Some(w) = &handle.writer {
            let mut w = w.lock().await;
            if w.needs_commit()
                && let Err(e) = w.commit(&self.client, &handle.path, &handle.attrs).await
            {
                tracing::warn!(path = handle.path, "failed to publish the file at its release: {e:?}");
            }
            w.abandon();
            drop(w);
            if let Err(e) = self.publish_attrs(&handle).await {
                tracing::warn!(
                    path = handle.path,
                    "failed to set the file's attributes at its release: {e:?}"
                );
            }
        }
        self.handles.remove(fh);
    }

    /// The size and metadata of a file about to be written: what this mount's writers see,
    /// else hoard's.
    async fn current(&self, ino: u64, path: &str) -> Result<(u64, Metadata), Errno> {
        if let Some((size, posix)) = self.handles.writing(ino) {
            return Ok((size, posix.merged_into(&[])));
        }
        let meta = self.client.stat(path).await.map_err(|e| errno(&e, Op::Other))?;
        Ok((meta.size, meta.metadata.unwrap_or_default().into_iter().collect()))
    }

    /// Whether the kernel may keep the pages it caches for `ino`: only when the version opened
    /// now is the one they came from. Records `version` as the cached one.
    fn keep_cache(&self, ino: u64, version: &str) -> bool {
        if !self.config.page_cache {
            return false;
        }
        let mut cached = self.cached_versions.lock();
        let keep = cached.get(&ino).is_some_and(|v| v == version);
        if !keep {
            cached.insert(ino, version.to_owned());
        }
        keep
    }

    fn open_flags(&self, keep_cache: bool) -> FopenFlags {
        if !self.config.page_cache {
            FopenFlags::FOPEN_DIRECT_IO
        } else if keep_cache {
            FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::empty()
        }
    }
}

/// The process (thread group) of thread `pid`: FUSE requests carry the calling thread's id.
/// `pid` itself when /proc does not say.
fn tgid(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_belongs_to_its_process() {
        let me = std::process::id();
        assert_eq!(tgid(me), me);
        assert_eq!(tgid(u32::MAX), u32::MAX, "an unknown thread is its own process");
    }
}
