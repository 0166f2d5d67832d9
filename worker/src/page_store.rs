//! The page store: cached pages of under-store files, keyed by file version and page index.
//!
//! A page is the unit of caching, eviction and integrity: it carries the CRC32C computed when it
//! was filled. Keys include the file's version tag, so pages of an older version of an object are
//! simply never asked for again and age out; they can never be served for the new version.
//!
//! The memory tier ([`MemoryPageStore`]) keeps pages in slots of a huge-page arena (see
//! `hoard_transport::region`); pages it evicts go to the NVMe tier ([`NvmeTier`]) when one is
//! configured, and come back from it on the next read.

mod memory;
mod nvme;

use bytes::Bytes;
use hoard_transport::wire::FileKey;

pub use memory::{MemoryPageStore, PageStoreStats};
pub use nvme::{NvmeConfig, NvmeStats, NvmeTier};

/// Identifies a file version compactly: a 128-bit hash of mount, path and version tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u128);

impl FileId {
    /// The id of a file version.
    pub fn of(file: &FileKey) -> FileId {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for part in [&file.mount, &file.path, &file.version] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        FileId(h.digest128())
    }
}

/// One page of one file version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageKey {
    /// The file version.
    pub file: FileId,
    /// Page index: byte offset / page size.
    pub index: u64,
}

/// A cached page: its bytes and their checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The bytes (a full page, or less at the end of the file).
    pub data: Bytes,
    /// CRC32C of `data`, computed when the page was filled.
    pub crc32c: u32,
}

impl Page {
    /// A page of these bytes, checksummed now.
    pub fn new(data: Bytes) -> Page {
        let crc32c = crc32c::crc32c(&data);
        Page { data, crc32c }
    }

    /// Whether the bytes still match the checksum.
    pub fn verify(&self) -> bool {
        crc32c::crc32c(&self.data) == self.crc32c
    }
}
