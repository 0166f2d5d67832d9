//! File attributes the kernel sees: sizes and times from hoard, mode, owner and a tool's mtime
//! from the file's metadata ([`Posix`]), the rest from the config.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};

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
}
