//! opendir, readdir and readdirplus, from hoard's paged listings.
//!
//! `readdirplus` gives the kernel each entry's attributes with its name (sizes and times come
//! with the listing), so `ls -l` or `find -size` over a large directory makes no lookup per
//! entry, for the files whose metadata the listing carries (those written through hoard and
//! still in the coordinator's overlay, and all of a local-directory under-store's). S3's listings
//! carry no metadata: those entries are given with a zero timeout, so a `stat` of one asks hoard
//! (a lookup) for its mode, owner and time instead of showing the mount's defaults.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fuser::{Errno, FileType, INodeNo, ReplyDirectory, ReplyDirectoryPlus};
use hoard_client::path::HoardPath;

use super::Inner;
use crate::attr::{dir_attr, file_attr};
use crate::dir::{DirEntry, DirHandle, PAGE_ENTRIES, child_of};
use crate::errno::{Op, errno};
use crate::inode::{Kind, ROOT_INO, child_path};

impl Inner {
    pub(super) fn opendir(&self, ino: u64) -> Result<u64, Errno> {
        let node = self.dir_node(ino)?;
        let parent = match node.path.rsplit_once('/') {
            Some((p, _)) if ino != ROOT_INO => self.inodes.lock().find(p).map_or(ROOT_INO, |(i, _)| i),
            _ => ROOT_INO,
        };
        let mut handle = DirHandle::new(node.path.clone(), ino, parent);
        if node.path.is_empty() {
            // The root of all mounts lists the cluster's mounts, from the config.
            for m in self.client.mounts() {
                let ino = self.inodes.lock().upsert(&child_path("", &m.name), Kind::Dir);
                handle.push(DirEntry {
                    name: m.name.clone(),
                    ino,
                    kind: Kind::Dir,
                    size: 0,
                    mtime_ms: 0,
                    posix: None,
                });
            }
            handle.done = true;
        }
        let fh = self.next_dir.fetch_add(1, Ordering::Relaxed);
        self.dirs.lock().insert(fh, Arc::new(tokio::sync::Mutex::new(handle)));
        Ok(fh)
    }

    /// Close directory handle `fh`; the inodes its plain `readdir` gave out that the kernel never
    /// counted go with it.
    pub(super) async fn releasedir(&self, fh: u64) {
        let Some(handle) = self.dirs.lock().remove(&fh) else {
            return;
        };
        let d = handle.lock().await;
        let mut inodes = self.inodes.lock();
        for e in d.entries.iter().skip(2) {
            inodes.drop_unreferenced(e.ino);
        }
    }

    pub(super) async fn readdir(&self, fh: u64, offset: u64, mut reply: ReplyDirectory) {
        let result = self
            .each_entry(fh, offset, |i, _, e| {
                let kind = match e.kind {
                    Kind::Dir => FileType::Directory,
                    Kind::File if e.posix.is_some_and(|p| p.is_symlink()) => FileType::Symlink,
                    Kind::File => FileType::RegularFile,
                };
                reply.add(INodeNo(e.ino), i + 1, kind, &e.name)
            })
            .await;
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    pub(super) async fn readdirplus(&self, fh: u64, offset: u64, mut reply: ReplyDirectoryPlus) {
        let result = self
            .each_entry(fh, offset, |i, dir, e| {
                // Every entry but `.` and `..` counts as a kernel lookup, of the inode the path
                // has now (the one it had when listed may have been forgotten since).
                let dots = e.name == "." || e.name == "..";
                let ino = if dots {
                    e.ino
                } else {
                    self.inodes.lock().entry(&child_path(dir, &e.name), e.kind)
                };
                let (attr, ttl) = match (e.kind, e.posix) {
                    (Kind::Dir, _) => (dir_attr(ino, self.started, &self.config), self.config.entry_ttl),
                    (Kind::File, posix) => {
                        let known = posix.unwrap_or_default();
                        let attr = file_attr(ino, e.size, e.mtime_ms, self.started, &known, &self.config);
                        let ttl = if posix.is_some() {
                            self.config.entry_ttl
                        } else {
                            Duration::ZERO
                        };
                        (attr, ttl)
                    }
                };
                let full = reply.add(INodeNo(ino), i + 1, &e.name, &ttl, &attr, fuser::Generation(0));
                if full && !dots {
                    // Not sent: the kernel does not count it.
                    self.inodes.lock().forget(ino, 1);
                }
                full
            })
            .await;
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// Hand the entries of directory handle `fh` from index `offset` on to `add` (with the
    /// directory's path; it answers whether the reply is full), fetching listing pages as needed.
    async fn each_entry(
        &self,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(u64, &str, &DirEntry) -> bool,
    ) -> Result<(), Errno> {
        let handle = self.dirs.lock().get(&fh).cloned().ok_or(Errno::EBADF)?;
        let mut d = handle.lock().await;
        let mut i = usize::try_from(offset).map_err(|_| Errno::EINVAL)?;
        loop {
            while let Some(entry) = d.entries.get(i) {
                if add(i as u64, &d.path, entry) {
                    return Ok(());
                }
                i += 1;
            }
            if d.done {
                return Ok(());
            }
            self.fetch_page(&mut d).await?;
        }
    }

    /// The next listing page of an open directory.
    async fn fetch_page(&self, d: &mut DirHandle) -> Result<(), Errno> {
        let prefix = HoardPath::parse(&d.path)
            .map_err(|e| errno(&e, Op::Other))?
            .dir_prefix();
        let page = self
            .client
            .list_page(&d.path, false, d.continuation.take(), PAGE_ENTRIES)
            .await
            .map_err(|e| errno(&e, Op::Other))?;
        for entry in &page.entries {
            let Some((name, kind, size, mtime_ms, posix)) = child_of(&prefix, entry) else {
                continue;
            };
            if d.contains(&name) {
                continue;
            }
            let ino = self.inodes.lock().upsert(&child_path(&d.path, &name), kind);
            d.push(DirEntry {
                name,
                ino,
                kind,
                size,
                mtime_ms,
                posix,
            });
        }
        d.done = page.next_continuation.is_none();
        d.continuation = page.next_continuation;
        Ok(())
    }
}
