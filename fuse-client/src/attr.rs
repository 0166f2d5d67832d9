//! File attributes the kernel sees: sizes and times from hoard, the rest from the config.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};

use crate::config::FuseConfig;

/// `st_blksize`: the I/O size tools like `cp` use for their buffers. One hoard page.
const BLOCK_SIZE: u32 = 1 << 20;

/// Attributes of a file of `size` bytes modified at `mtime_ms` (0: unknown, shown as `fallback`).
pub fn file_attr(ino: u64, size: u64, mtime_ms: u64, fallback: SystemTime, cfg: &FuseConfig) -> FileAttr {
    let mtime = if mtime_ms == 0 {
        fallback
    } else {
        UNIX_EPOCH + Duration::from_millis(mtime_ms)
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: mtime,
        crtime: mtime,
        kind: FileType::RegularFile,
        perm: mode(cfg.file_mode, cfg.read_only),
        nlink: 1,
        uid: cfg.uid,
        gid: cfg.gid,
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
        let f = file_attr(5, 1025, 2_000, start, &cfg);
        assert_eq!(
            (f.ino, f.size, f.blocks, f.kind),
            (INodeNo(5), 1025, 3, FileType::RegularFile)
        );
        assert_eq!(f.mtime, UNIX_EPOCH + Duration::from_secs(2));
        assert_eq!((f.uid, f.gid, f.perm), (7, 8, 0o644));
        assert_eq!(
            file_attr(5, 0, 0, start, &cfg).mtime,
            start,
            "an unknown mtime shows the start"
        );
        let d = dir_attr(1, start, &cfg);
        assert_eq!((d.kind, d.perm, d.nlink), (FileType::Directory, 0o755, 2));
        let ro = FuseConfig { read_only: true, ..cfg };
        assert_eq!(file_attr(5, 1, 1, start, &ro).perm, 0o444);
        assert_eq!(dir_attr(1, start, &ro).perm, 0o555);
    }
}
