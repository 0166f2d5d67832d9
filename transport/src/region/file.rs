//! A region backed by a file on a local disk (the NVMe tier): preallocated, mapped with
//! `memmap2`, and written and read by copies at offsets, with durability asked for by range.
//!
//! The invariant that makes the copies sound: the file is this process's alone (an exclusive
//! `flock` is held while the region lives, so a second worker pointed at the same directory
//! fails to open it), and the mapping lives as long as the region. Which bytes may be read while
//! others write them is the caller's business (the tier checks each page's CRC32C after copying
//! it out, so a copy that raced a rewrite of its slot is thrown away; within one process that is
//! a data race on plain bytes, as for the arena's readers, see docs/design.md). The file's blocks
//! are all allocated at open, so a full disk cannot surface as a `SIGBUS` under the mapping; a
//! media error can (the kernel's only way to report it through a mapping).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use memmap2::MmapRaw;
use rustix::fs::{FallocateFlags, FlockOperation};

/// Write `len` zero bytes to the start of `file`.
fn write_zeros(file: &File, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// A file of fixed size mapped into memory, for this process alone.
#[derive(Debug)]
pub struct FileRegion {
    map: MmapRaw,
    _file: File,
    path: PathBuf,
    created: bool,
}

impl FileRegion {
    /// Open (creating and preallocating when missing or of another size) the file at `path` of
    /// `len` bytes, lock it, and map it.
    ///
    /// # Errors
    /// I/O errors; `WouldBlock` when another process holds the file; `StorageFull` when the disk
    /// has no room for `len` bytes.
    pub fn open(path: &Path, len: u64) -> io::Result<FileRegion> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).map_err(|e| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another process ({e})", path.display()),
            )
        })?;
        let created = file.metadata()?.len() != len;
        if created {
            file.set_len(0)?;
            // Reserve the blocks now, so that a full disk shows at start, not as SIGBUS later.
            match rustix::fs::fallocate(&file, FallocateFlags::empty(), 0, len) {
                Ok(()) => {}
                Err(rustix::io::Errno::NOSPC) => {
                    return Err(io::Error::new(
                        io::ErrorKind::StorageFull,
                        format!("no room for {len} bytes in {}", path.display()),
                    ));
                }
                // A file system without fallocate: write the zeros out, so that no block is left
                // to allocate later (a full disk under a mapping is a SIGBUS, not an error).
                Err(_) => write_zeros(&file, len)?,
            }
            file.sync_all()?;
        }
        let map = MmapRaw::map_raw(&file)?;
        if map.len() as u64 != len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "mapped a file of another size",
            ));
        }
        Ok(FileRegion {
            map,
            _file: file,
            path: path.to_owned(),
            created,
        })
    }

    /// Whether `open` created (or resized) the file: its old contents are gone.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the region.
    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Whether the region has no byte.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    fn check(&self, offset: u64, len: usize) -> usize {
        let end = offset.checked_add(len as u64).expect("range overflows");
        assert!(end <= self.len(), "range [{offset}, {end}) outside the region");
        offset as usize
    }

    /// Copy `bytes` into the region at `offset`.
    ///
    /// # Panics
    /// When the range is outside the region.
    pub fn write(&self, offset: u64, bytes: &[u8]) {
        let at = self.check(offset, bytes.len());
        // SAFETY: the range is inside the mapping (checked), which lives as long as `self`; the
        // file is ours alone (flock). Concurrent readers of these bytes may see a torn copy,
        // which their checksum rejects (see the module documentation).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.map.as_mut_ptr().add(at), bytes.len()) };
    }

    /// Copy the region's bytes at `offset` into `dst`.
    ///
    /// # Panics
    /// When the range is outside the region.
    pub fn read(&self, offset: u64, dst: &mut [u8]) {
        let at = self.check(offset, dst.len());
        // SAFETY: as in `write`: inside the mapping, which outlives the call; `dst` is not it.
        unsafe { std::ptr::copy_nonoverlapping(self.map.as_ptr().add(at), dst.as_mut_ptr(), dst.len()) };
    }

    /// Make bytes `[offset, offset + len)` durable (`msync`, synchronous).
    ///
    /// # Errors
    /// I/O errors of the write-back.
    pub fn flush(&self, offset: u64, len: usize) -> io::Result<()> {
        let at = self.check(offset, len);
        self.map.flush_range(at, len)
    }
}

// SAFETY: the file's mapping is made once in `open`, never remapped or resized, and unmapped
// only when the `FileRegion` is dropped.
unsafe impl super::StableMemory for FileRegion {
    fn memory(&self) -> (std::ptr::NonNull<u8>, usize) {
        let ptr = std::ptr::NonNull::new(self.map.as_mut_ptr()).expect("a mapping is never at address 0");
        (ptr, self.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_survive_a_reopen_and_a_second_opener_is_refused() {
        let dir = std::env::temp_dir().join(format!("hoard-file-region-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("r.data");
        let _ = std::fs::remove_file(&path);
        {
            let r = FileRegion::open(&path, 1 << 20).expect("open");
            assert!(r.created());
            r.write(4096, b"hello");
            r.flush(4096, 5).expect("flush");
            let e = FileRegion::open(&path, 1 << 20).expect_err("locked");
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
        }
        let r = FileRegion::open(&path, 1 << 20).expect("reopen");
        assert!(!r.created(), "same size: kept");
        let mut got = [0u8; 5];
        r.read(4096, &mut got);
        assert_eq!(&got, b"hello");
        drop(r);
        let r = FileRegion::open(&path, 2 << 20).expect("resize");
        assert!(r.created(), "another size: started over");
        r.read(4096, &mut got);
        assert_eq!(got, [0; 5]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
