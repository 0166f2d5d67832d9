//! mkdir, rmdir, unlink and rename: one hoard call each, at the mount's coordinator.

use bytes::Bytes;
use fuser::{Errno, FileAttr, RenameFlags};
use hoard_client::CreateOptions;

use super::Inner;
use super::meta::Found;
use crate::errno::{Op, errno};
use crate::inode::{Kind, child_path};
use crate::posix::Posix;

/// Longest symbolic link target (`PATH_MAX`).
const MAX_LINK_TARGET: usize = 4096;

impl Inner {
    pub(super) async fn mkdir(&self, parent: u64, name: &str) -> Result<FileAttr, Errno> {
        self.writable()?;
        let path = self.child_in_mount(parent, name)?;
        self.client.mkdir(&path).await.map_err(|e| errno(&e, Op::Other))?;
        Ok(self.attr_of(&path, Found::Dir))
    }

    /// A symbolic link: a small object holding the target, its mode marking it a link
    /// (see [`crate::posix`]). Published at once, like any close.
    pub(super) async fn symlink(&self, parent: u64, name: &str, target: &str, owner: Posix) -> Result<FileAttr, Errno> {
        self.writable()?;
        let path = self.child_in_mount(parent, name)?;
        if target.is_empty() || target.len() > MAX_LINK_TARGET {
            return Err(if target.is_empty() {
                Errno::ENOENT
            } else {
                Errno::ENAMETOOLONG
            });
        }
        let options = CreateOptions {
            exclusive: true,
            append: false,
            metadata: owner.merged_into(&[]),
        };
        let mut writer = self
            .client
            .create(&path, options)
            .await
            .map_err(|e| errno(&e, Op::WriteFile))?;
        writer
            .write(target.as_bytes())
            .await
            .map_err(|e| errno(&e, Op::WriteFile))?;
        let meta = writer.close().await.map_err(|e| errno(&e, Op::WriteFile))?;
        Ok(self.attr_of(&path, Found::file(&meta)))
    }

    /// The target of symbolic link `ino`: its content.
    pub(super) async fn readlink(&self, ino: u64) -> Result<Bytes, Errno> {
        let node = self.node(ino)?;
        if node.kind != Kind::File {
            return Err(Errno::EINVAL);
        }
        let meta = self.client.stat(&node.path).await.map_err(|e| errno(&e, Op::Other))?;
        let posix = meta.metadata.as_deref().map(Posix::from_pairs).unwrap_or_default();
        if !posix.is_symlink() || meta.size > MAX_LINK_TARGET as u64 {
            return Err(Errno::EINVAL);
        }
        let file = self.client.open(&node.path).await.map_err(|e| errno(&e, Op::Other))?;
        file.read(0, meta.size).await.map_err(|e| errno(&e, Op::Other))
    }

    /// unlink (`kind` = file) or rmdir (`kind` = directory, refused when not empty).
    pub(super) async fn remove(&self, parent: u64, name: &str, kind: Kind) -> Result<(), Errno> {
        self.writable()?;
        let path = self.child_in_mount(parent, name)?;
        // The kernel checks the kind it knows; hoard's delete takes files and directories alike,
        // so check again rather than let an unlink remove an empty directory.
        let known = self.inodes.lock().find(&path);
        match (known, kind) {
            (Some((_, Kind::Dir)), Kind::File) => return Err(Errno::EISDIR),
            (Some((_, Kind::File)), Kind::Dir) => return Err(Errno::ENOTDIR),
            _ => {}
        }
        let writers: Vec<_> = match known {
            Some((ino, Kind::File)) => self
                .handles
                .of_inode(ino)
                .into_iter()
                .filter(|h| h.writer.is_some())
                .collect(),
            _ => Vec::new(),
        };
        match self.client.delete(&path, false).await {
            Ok(()) => {}
            // Created through this mount and not yet closed: it exists only in its handles.
            Err(e) if e.is_not_found() && !writers.is_empty() => {}
            Err(e) => return Err(errno(&e, Op::Other)),
        }
        self.inodes.lock().remove_tree(&path);
        // A file unlinked while open for writing must not come back when it is closed.
        for handle in writers {
            if let Some(w) = &handle.writer {
                w.lock().await.orphan();
            }
        }
        Ok(())
    }

    pub(super) async fn rename(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        self.writable()?;
        let src = self.child_in_mount(parent, name)?;
        let dst = self.child_in_mount(new_parent, new_name)?;
        if mount_of(&src) != mount_of(&dst) {
            return Err(Errno::EXDEV);
        }
        if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
            tracing::debug!(src, dst, "refusing a rename exchange or whiteout");
            return Err(Errno::EINVAL);
        }
        if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            // Checked here, then renamed: another client may create `dst` in between.
            match self.resolve(&dst).await {
                Ok(_) => return Err(Errno::EEXIST),
                Err(e) if e == Errno::ENOENT => {}
                Err(e) => return Err(e),
            }
        }
        let op = match self.inodes.lock().find(&src) {
            Some((_, Kind::Dir)) => Op::RenameDir,
            _ => Op::RenameFile,
        };
        self.client.rename(&src, &dst).await.map_err(|e| errno(&e, op))?;
        self.inodes.lock().rename(&src, &dst);
        Ok(())
    }

    /// The path of `name` in directory `parent`, refused (`EPERM`) at the root of all mounts,
    /// whose entries are the mounts themselves.
    fn child_in_mount(&self, parent: u64, name: &str) -> Result<String, Errno> {
        let parent = self.dir_node(parent)?;
        if parent.path.is_empty() {
            return Err(Errno::EPERM);
        }
        Ok(child_path(&parent.path, name))
    }
}

/// The mount a path `/MOUNT/...` is in.
fn mount_of(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_mount() {
        assert_eq!(mount_of("/m/a/b"), "m");
        assert_eq!(mount_of("/other/x"), "other");
    }
}
