//! File attributes the kernel sees: sizes and times from hoard, mode, owner and a tool's mtime
//! from the file's metadata ([`Posix`]), the rest from the config.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{AccessFlags, Errno, FileAttr, FileType, INodeNo};

use crate::config::FuseConfig;
use crate::posix::Posix;

/// `st_blksize`: the I/O size tools like `cp` use for their buffers. One hoard page.
const BLOCK_SIZE: u32 = 1 << 20;

/// Attributes of a file of `size` bytes modified at `mtime_ms` (0: unknown, shown as `fallback`),
/// with the attributes `posix` its metadata holds.
pub fn file_attr(
    ino: u64,
    size: u64,
    mtime_ms: u64,
    fallback: SystemTime,
    posix: &Posix,
    cfg: &FuseConfig,
) -> FileAttr {
    let mtime = match (posix.mtime, mtime_ms) {
        (Some(t), _) => t,
        (None, 0) => fallback,
        (None, ms) => UNIX_EPOCH + Duration::from_millis(ms),
    };
    let (kind, perm) = match posix.mode {
        Some(m) if posix.is_symlink() => (FileType::Symlink, (m & 0o7777) as u16),
        Some(m) => (FileType::RegularFile, mode((m & 0o7777) as u16, cfg.read_only)),
        None => (FileType::RegularFile, mode(cfg.file_mode, cfg.read_only)),
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: mtime,
        crtime: mtime,
        kind,
        perm,
        nlink: 1,
        uid: posix.uid.unwrap_or(cfg.uid),
        gid: posix.gid.unwrap_or(cfg.gid),
        rdev: 0,
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

/// Attributes of a directory: hoard keeps no times for directories, so they show `at` (when
/// the mount started).
pub fn dir_attr(ino: u64, at: SystemTime, cfg: &FuseConfig) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: at,
        mtime: at,
        ctime: at,
        crtime: at,
        kind: FileType::Directory,
        perm: mode(cfg.dir_mode, cfg.read_only),
        nlink: 2,
        uid: cfg.uid,
        gid: cfg.gid,
        rdev: 0,
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

/// Permission bits, without the write bits on a read-only mount.
fn mode(bits: u16, read_only: bool) -> u16 {
    if read_only { bits & !0o222 } else { bits }
}

/// Whether `mask` (`access(2)`'s `R_OK`/`W_OK`/`X_OK`) is granted to user `uid` in group
/// `gid` on a file or directory with attributes `attr`, by the mode bits as the kernel checks
/// them: the owner's, the group's or the others' bits; root may read and write anything and
/// execute what has any execute bit (or is a directory). `W_OK` on a read-only mount is `EROFS`.
pub fn access(read_only: bool, attr: &FileAttr, uid: u32, gid: u32, mask: AccessFlags) -> Result<(), Errno> {
    if read_only && mask.contains(AccessFlags::W_OK) {
        return Err(Errno::EROFS);
    }
    let perm = u32::from(attr.perm);
    let granted = if uid == 0 {
        let exec = attr.kind == FileType::Directory || perm & 0o111 != 0;
        0o6 | if exec { 0o1 } else { 0 }
    } else if uid == attr.uid {
        perm >> 6 & 0o7
    } else if gid == attr.gid {
        perm >> 3 & 0o7
    } else {
        perm & 0o7
    };
    let wanted = [
        (AccessFlags::R_OK, 0o4),
        (AccessFlags::W_OK, 0o2),
        (AccessFlags::X_OK, 0o1),
    ]
    .into_iter()
    .filter(|(flag, _)| mask.contains(*flag))
    .fold(0, |bits, (_, bit)| bits | bit);
    if wanted & !granted == 0 {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_carry_size_time_and_mode() {
        let cfg = FuseConfig {
            uid: 7,
            gid: 8,
            ..FuseConfig::default()
        };
        let start = UNIX_EPOCH + Duration::from_secs(100);
        let none = Posix::default();
        let f = file_attr(5, 1025, 2_000, start, &none, &cfg);
        assert_eq!(
            (f.ino, f.size, f.blocks, f.kind),
            (INodeNo(5), 1025, 3, FileType::RegularFile)
        );
        assert_eq!(f.mtime, UNIX_EPOCH + Duration::from_secs(2));
        assert_eq!((f.uid, f.gid, f.perm), (7, 8, 0o644));
        assert_eq!(
            file_attr(5, 0, 0, start, &none, &cfg).mtime,
            start,
            "an unknown mtime shows the start"
        );
        let d = dir_attr(1, start, &cfg);
        assert_eq!((d.kind, d.perm, d.nlink), (FileType::Directory, 0o755, 2));
        let ro = FuseConfig {
            read_only: true,
            ..cfg.clone()
        };
        assert_eq!(file_attr(5, 1, 1, start, &none, &ro).perm, 0o444);
        assert_eq!(dir_attr(1, start, &ro).perm, 0o555);
        let kept = Posix {
            mode: Some(crate::posix::S_IFREG | 0o750),
            uid: Some(42),
            gid: None,
            mtime: Some(UNIX_EPOCH + Duration::from_secs(9)),
        };
        let f = file_attr(5, 1, 2_000, start, &kept, &cfg);
        assert_eq!((f.perm, f.uid, f.gid, f.kind), (0o750, 42, 8, FileType::RegularFile));
        assert_eq!(f.mtime, UNIX_EPOCH + Duration::from_secs(9), "a tool's mtime wins");
        let link = Posix {
            mode: Some(crate::posix::S_IFLNK | 0o777),
            ..Posix::default()
        };
        assert_eq!(file_attr(5, 3, 0, start, &link, &cfg).kind, FileType::Symlink);
    }

    #[test]
    fn access_follows_the_mode_bits_of_the_callers_class() {
        let cfg = FuseConfig {
            uid: 7,
            gid: 8,
            ..FuseConfig::default()
        };
        let f = file_attr(5, 1, 1, SystemTime::now(), &Posix::default(), &cfg);
        let (r, w, x) = (AccessFlags::R_OK, AccessFlags::W_OK, AccessFlags::X_OK);
        assert_eq!(
            access(false, &f, 7, 8, r | w),
            Ok(()),
            "the owner reads and writes 0644"
        );
        assert_eq!(access(false, &f, 7, 8, x), Err(Errno::EACCES), "nobody executes 0644");
        assert_eq!(
            access(false, &f, 9, 8, w),
            Err(Errno::EACCES),
            "the group does not write"
        );
        assert_eq!(access(false, &f, 9, 9, r), Ok(()), "others read");
        assert_eq!(access(false, &f, 0, 0, r | w), Ok(()), "root reads and writes");
        assert_eq!(
            access(false, &f, 0, 0, x),
            Err(Errno::EACCES),
            "root executes only with an x bit"
        );
        assert_eq!(access(true, &f, 7, 8, w), Err(Errno::EROFS), "a read-only mount");
        let d = dir_attr(6, SystemTime::now(), &cfg);
        assert_eq!(access(false, &d, 0, 0, x), Ok(()), "root enters a directory");
        assert_eq!(access(false, &d, 9, 9, r | x), Ok(()), "others list 0755");
    }
}
