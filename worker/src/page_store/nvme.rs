//! The NVMe tier: pages evicted from memory, in page-sized slots of large preallocated files on
//! local disks, with an index that survives restarts.
//!
//! Each configured directory holds two files, mapped with `memmap2` (through
//! [`FileRegion`]): `hoard-nvme.data` (the slots) and `hoard-nvme.index` (one 64-byte record per
//! slot, after a header record). A slot's record says which page it holds (file id, page index,
//! length, CRC32C) or that it is free.
//!
//! **Crash ordering: a slot's record never claims bytes the slot does not hold.** A slot is
//! written only while its record is *durably* free: free slots come from a list that only the
//! flusher thread fills, after it has written and `msync`ed the slot's free record. The page's
//! bytes are copied in, then the flusher `msync`s them, and only then writes and `msync`s the
//! record that names the page. A crash at any point leaves either the free record (the slot is
//! simply empty after the restart) or a record whose bytes were durable before it. Reads check
//! each page's CRC32C as well, so a slot rewritten under a reader is dropped, never served.
//!
//! The tier is *inclusive*: a page read from it is copied back into memory (promoted) and stays
//! on disk, so evicting it from memory again costs no write. Its own eviction policy picks the
//! page to drop when it needs a slot.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam::channel::{Receiver, Sender};
use hoard_transport::region::FileRegion;
use parking_lot::Mutex;

use super::{FileId, Page, PageKey};
use crate::eviction::EvictionPolicy;
use crate::metrics;

/// Bytes of one index record.
const RECORD: u64 = 64;
/// "HNV1": the header record's and every valid record's magic number.
const MAGIC: u32 = u32::from_le_bytes(*b"HNV1");
/// A record naming a page.
const VALID: u32 = 1;

/// What the tier needs to know.
#[derive(Debug, Clone)]
pub struct NvmeConfig {
    /// One directory per disk; the capacity is split evenly among them.
    pub dirs: Vec<PathBuf>,
    /// Bytes of page slots in all.
    pub capacity_bytes: u64,
    /// Bytes of one slot.
    pub page_size: u64,
}

/// Where a page is: which file, which slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SlotId {
    file: u16,
    slot: u32,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: SlotId,
    len: u32,
    crc32c: u32,
}

/// One directory's files.
#[derive(Debug)]
struct Disk {
    /// Shared with the RDMA registration of the region.
    data: Arc<FileRegion>,
    index: FileRegion,
}

#[derive(Debug)]
struct Inner {
    pages: HashMap<PageKey, Entry>,
    policy: Box<dyn EvictionPolicy<PageKey>>,
    /// Slots whose free record is durable: the only ones that may be written.
    free: Vec<SlotId>,
    used_bytes: u64,
    seq: u64,
}

/// Work for the flusher thread, in order.
#[derive(Debug)]
enum Job {
    /// Make a written slot durable, then its record naming `key`.
    Commit {
        at: SlotId,
        key: PageKey,
        len: u32,
        crc32c: u32,
        seq: u64,
    },
    /// Write and flush a free record for the slot, then hand it to the free list.
    Free(SlotId),
    /// Say when every job before this one is done.
    Barrier(Sender<()>),
    /// Finish: the tier is being dropped.
    Stop,
}

/// Counters of the tier.
#[derive(Debug, Default)]
pub struct NvmeStats {
    /// Lookups that found the page.
    pub hits: AtomicU64,
    /// Bytes read out of the tier.
    pub bytes_read: AtomicU64,
    /// Pages written into the tier.
    pub demotions: AtomicU64,
    /// Pages not written: no durably free slot at that moment.
    pub demotions_skipped: AtomicU64,
    /// Pages whose bytes failed their checksum when read (dropped).
    pub corrupt: AtomicU64,
}

/// The NVMe tier of one worker.
#[derive(Debug)]
pub struct NvmeTier {
    disks: Arc<Vec<Disk>>,
    inner: Arc<Mutex<Inner>>,
    jobs: Sender<Job>,
    page_size: u64,
    slots: u64,
    stats: NvmeStats,
    /// The free slots the tier keeps ahead of demotions.
    low_water: usize,
    /// `Free` jobs sent and not yet done: slots on their way to the free list.
    freeing: Arc<AtomicUsize>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

impl Drop for NvmeTier {
    /// Finish the writes queued so far, and let go of the files (and their locks).
    fn drop(&mut self) {
        let _ = self.jobs.send(Job::Stop);
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

impl NvmeTier {
    /// Open (or create) the tier's files and rebuild its index from the records: pages that
    /// were durable before a restart are served again.
    ///
    /// # Errors
    /// A directory that cannot be created, files that cannot be created, locked or mapped, a
    /// disk without room, or a capacity under one slot per directory.
    pub fn open(config: &NvmeConfig, policy: Box<dyn EvictionPolicy<PageKey>>) -> std::io::Result<NvmeTier> {
        let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
        let page = config.page_size;
        let per_disk = config.capacity_bytes / config.dirs.len().max(1) as u64 / page;
        if config.dirs.is_empty() || per_disk == 0 || per_disk > u64::from(u32::MAX) {
            return Err(invalid(format!(
                "an NVMe tier of {} bytes in {} directories holds no whole {page}-byte slot per directory",
                config.capacity_bytes,
                config.dirs.len()
            )));
        }
        let mut disks = Vec::new();
        let mut inner = Inner {
            pages: HashMap::new(),
            policy,
            free: Vec::new(),
            used_bytes: 0,
            seq: 0,
        };
        // Every directory's records first, then the newest record of each page wins across all
        // of them; every other slot gets a durable free record before it may be written.
        let mut found: Vec<(PageKey, u64, Entry)> = Vec::new();
        let mut unused: Vec<SlotId> = Vec::new();
        for (d, dir) in config.dirs.iter().enumerate() {
            std::fs::create_dir_all(dir)?;
            let data = Arc::new(FileRegion::open(&dir.join("hoard-nvme.data"), per_disk * page)?);
            let index = FileRegion::open(&dir.join("hoard-nvme.index"), (per_disk + 1) * RECORD)?;
            let file = u16::try_from(d).map_err(|_| invalid("too many NVMe directories".into()))?;
            let disk = Disk { data, index };
            let fresh = disk.data.created() || disk.index.created() || !disk.header_matches(page, per_disk);
            if fresh {
                disk.reset(page, per_disk)?;
                inner
                    .free
                    .extend((0..per_disk as u32).map(|slot| SlotId { file, slot }));
            } else {
                disk.records(file, per_disk as u32, page, &mut found, &mut unused);
            }
            disks.push(disk);
        }
        let mut best: HashMap<PageKey, (u64, Entry)> = HashMap::new();
        for (key, seq, entry) in found {
            match best.get(&key) {
                Some((newer, _)) if *newer > seq => unused.push(entry.at),
                Some((_, older)) => {
                    unused.push(older.at);
                    best.insert(key, (seq, entry));
                }
                None => {
                    best.insert(key, (seq, entry));
                }
            }
        }
        for at in &unused {
            disks[usize::from(at.file)]
                .index
                .write(u64::from(at.slot + 1) * RECORD, &[0u8; RECORD as usize]);
        }
        for disk in &disks {
            disk.index.flush(0, disk.index.len() as usize)?;
        }
        inner.free.extend(unused);
        for (key, (seq, entry)) in best {
            inner.seq = inner.seq.max(seq);
            inner.used_bytes += u64::from(entry.len);
            inner.policy.insert(key);
            inner.pages.insert(key, entry);
        }
        tracing::info!(
            dirs = config.dirs.len(),
            slots = per_disk * config.dirs.len() as u64,
            recovered = inner.pages.len(),
            "NVMe tier ready"
        );
        let slots = per_disk * config.dirs.len() as u64;
        let disks = Arc::new(disks);
        let inner = Arc::new(Mutex::new(inner));
        let (jobs, rx) = crossbeam::channel::unbounded();
        let freeing = Arc::new(AtomicUsize::new(0));
        let (flusher_disks, flusher_inner, flusher_freeing) = (disks.clone(), inner.clone(), freeing.clone());
        let flusher = std::thread::Builder::new()
            .name("hoard-nvme-flush".into())
            .spawn(move || flush_loop(&rx, &flusher_disks, &flusher_inner, &flusher_freeing, page))?;
        let tier = NvmeTier {
            disks,
            inner,
            jobs,
            page_size: page,
            slots,
            stats: NvmeStats::default(),
            low_water: (slots as usize / 64).max(2),
            freeing,
            flusher: Some(flusher),
        };
        ::metrics::gauge!(metrics::TIER_CAPACITY_BYTES, "tier" => "nvme").set((slots * page) as f64);
        tier.publish();
        Ok(tier)
    }

    /// The data files' mappings, one per directory (what RDMA registers).
    pub fn data_regions(&self) -> Vec<Arc<FileRegion>> {
        self.disks.iter().map(|d| d.data.clone()).collect()
    }

    /// Bytes of slots in all.
    pub fn capacity_bytes(&self) -> u64 {
        self.slots * self.page_size
    }

    /// Bytes of pages held.
    pub fn used_bytes(&self) -> u64 {
        self.inner.lock().used_bytes
    }

    /// Pages held.
    pub fn len(&self) -> usize {
        self.inner.lock().pages.len()
    }

    /// Whether no page is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters.
    pub fn stats(&self) -> &NvmeStats {
        &self.stats
    }

    /// Whether the tier holds the page.
    pub fn contains(&self, key: &PageKey) -> bool {
        self.inner.lock().pages.contains_key(key)
    }

    /// The page's bytes, read from disk and checked; `None` when the tier does not hold it, or
    /// its bytes fail their checksum (then it is dropped).
    pub fn read(&self, key: &PageKey) -> Option<Vec<u8>> {
        let entry = {
            let mut inner = self.inner.lock();
            let entry = *inner.pages.get(key)?;
            inner.policy.access(key);
            entry
        };
        let mut bytes = vec![0u8; entry.len as usize];
        self.disks[usize::from(entry.at.file)]
            .data
            .read(u64::from(entry.at.slot) * self.page_size, &mut bytes);
        if crc32c::crc32c(&bytes) != entry.crc32c {
            // Rewritten under us (evicted and reused), or damaged on disk.
            let still_there = self.inner.lock().pages.get(key).is_some_and(|e| e.at == entry.at);
            if still_there {
                self.stats.corrupt.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    file = entry.at.file,
                    slot = entry.at.slot,
                    "NVMe page failed its checksum; dropped"
                );
                self.remove(key);
            }
            return None;
        }
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        ::metrics::counter!(metrics::TIER_HITS, "tier" => "nvme").increment(1);
        ::metrics::counter!(metrics::TIER_BYTES_READ, "tier" => "nvme").increment(bytes.len() as u64);
        Some(bytes)
    }

    /// Write a page evicted from memory into a durably free slot (a page already held is left
    /// as it is). When no slot is free at this moment the page is skipped; either way the tier
    /// frees slots ahead of the next demotions (its own evictions).
    pub fn demote(&self, key: PageKey, page: &Page) {
        let Ok(len) = u32::try_from(page.data.len()) else {
            return;
        };
        if u64::from(len) > self.page_size {
            return;
        }
        let at = {
            let mut inner = self.inner.lock();
            if inner.pages.contains_key(&key) {
                return;
            }
            let at = inner.free.pop();
            self.refill(&mut inner);
            at
        };
        let Some(at) = at else {
            self.stats.demotions_skipped.fetch_add(1, Ordering::Relaxed);
            ::metrics::counter!(metrics::NVME_DEMOTIONS_SKIPPED).increment(1);
            return;
        };
        // The slot's free record is durable and nobody else holds the slot: copy outside the lock.
        self.disks[usize::from(at.file)]
            .data
            .write(u64::from(at.slot) * self.page_size, &page.data);
        {
            let mut inner = self.inner.lock();
            inner.seq += 1;
            let seq = inner.seq;
            let entry = Entry {
                at,
                len,
                crc32c: page.crc32c,
            };
            if let Some(old) = inner.pages.insert(key, entry) {
                // Demoted twice at once: the other copy's slot goes back.
                inner.used_bytes -= u64::from(old.len);
                self.free_slot(old.at);
            } else {
                inner.policy.insert(key);
            }
            inner.used_bytes += u64::from(len);
            // Sent under the lock: the flusher sees a slot's commit before any later free of it
            // (which needs this entry in the index first).
            let _ = self.jobs.send(Job::Commit {
                at,
                key,
                len,
                crc32c: page.crc32c,
                seq,
            });
        }
        self.stats.demotions.fetch_add(1, Ordering::Relaxed);
        ::metrics::counter!(metrics::NVME_DEMOTIONS).increment(1);
        ::metrics::gauge!(metrics::NVME_UNFLUSHED).set(self.jobs.len() as f64);
        self.publish();
    }

    /// Drop a page (its file is gone, or it failed verification).
    pub fn remove(&self, key: &PageKey) {
        let mut inner = self.inner.lock();
        self.remove_locked(&mut inner, key);
    }

    fn remove_locked(&self, inner: &mut Inner, key: &PageKey) {
        if let Some(entry) = inner.pages.remove(key) {
            inner.policy.remove(key);
            inner.used_bytes -= u64::from(entry.len);
            self.free_slot(entry.at);
        }
    }

    /// Send a slot to the flusher to be freed (called with the index locked, after the slot left
    /// it).
    fn free_slot(&self, at: SlotId) {
        self.freeing.fetch_add(1, Ordering::Relaxed);
        let _ = self.jobs.send(Job::Free(at));
    }

    /// Evict pages until enough slots are free or on their way to the free list.
    fn refill(&self, inner: &mut Inner) {
        let pending = self.freeing.load(Ordering::Relaxed);
        let mut short = self.low_water.saturating_sub(inner.free.len() + pending);
        while short > 0 {
            let Some(victim) = inner.policy.evict() else { break };
            if let Some(entry) = inner.pages.remove(&victim) {
                inner.used_bytes -= u64::from(entry.len);
                self.free_slot(entry.at);
                ::metrics::counter!(metrics::NVME_EVICTIONS).increment(1);
                short -= 1;
            }
        }
    }

    fn publish(&self) {
        let used = self.inner.lock().used_bytes;
        ::metrics::gauge!(metrics::TIER_USED_BYTES, "tier" => "nvme").set(used as f64);
    }

    /// Wait until every write so far is durable (for tests and a clean stop).
    pub fn sync(&self) {
        let (tx, rx) = crossbeam::channel::bounded(1);
        if self.jobs.send(Job::Barrier(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

impl Disk {
    fn header_matches(&self, page: u64, slots: u64) -> bool {
        let mut h = [0u8; RECORD as usize];
        self.index.read(0, &mut h);
        u32_at(&h, 0) == MAGIC && u64_at(&h, 8) == page && u64_at(&h, 16) == slots
    }

    /// A new tier: every record free, then the header.
    fn reset(&self, page: u64, slots: u64) -> std::io::Result<()> {
        let zero = vec![0u8; (slots * RECORD) as usize];
        self.index.write(RECORD, &zero);
        self.index.flush(RECORD, zero.len())?;
        let mut h = [0u8; RECORD as usize];
        h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        h[8..16].copy_from_slice(&page.to_le_bytes());
        h[16..24].copy_from_slice(&slots.to_le_bytes());
        self.index.write(0, &h);
        self.index.flush(0, RECORD as usize)
    }

    /// The pages the records of this directory name, and the slots they leave unused.
    fn records(
        &self,
        file: u16,
        slots: u32,
        page: u64,
        found: &mut Vec<(PageKey, u64, Entry)>,
        unused: &mut Vec<SlotId>,
    ) {
        for slot in 0..slots {
            let mut r = [0u8; RECORD as usize];
            self.index.read(u64::from(slot + 1) * RECORD, &mut r);
            let at = SlotId { file, slot };
            let len = u32_at(&r, 8);
            if u32_at(&r, 0) != MAGIC || u32_at(&r, 4) != VALID || u64::from(len) > page || len == 0 {
                unused.push(at);
                continue;
            }
            let key = PageKey {
                file: FileId(u128::from_le_bytes(r[24..40].try_into().expect("16 bytes"))),
                index: u64_at(&r, 16),
            };
            let entry = Entry {
                at,
                len,
                crc32c: u32_at(&r, 12),
            };
            found.push((key, u64_at(&r, 40), entry));
        }
    }
}

/// The flusher: makes writes durable in the order the crash rule needs, and hands freed slots
/// to the free list once their free records are durable.
fn flush_loop(rx: &Receiver<Job>, disks: &[Disk], inner: &Mutex<Inner>, freeing: &AtomicUsize, page: u64) {
    while let Ok(job) = rx.recv() {
        let result = match job {
            Job::Commit {
                at,
                key,
                len,
                crc32c,
                seq,
            } => commit(&disks[usize::from(at.file)], inner, at, key, len, crc32c, seq, page),
            Job::Free(at) => {
                let disk = &disks[usize::from(at.file)];
                let off = u64::from(at.slot + 1) * RECORD;
                disk.index.write(off, &[0u8; RECORD as usize]);
                let flushed = disk.index.flush(off, RECORD as usize);
                if flushed.is_ok() {
                    inner.lock().free.push(at);
                }
                // A slot whose free record could not be made durable is never written again
                // (until a restart gives it a free record first).
                freeing.fetch_sub(1, Ordering::Relaxed);
                flushed
            }
            Job::Barrier(done) => {
                let _ = done.send(());
                Ok(())
            }
            Job::Stop => return,
        };
        if let Err(e) = result {
            tracing::error!("NVMe tier write-back failed: {e}");
        }
        ::metrics::gauge!(metrics::NVME_UNFLUSHED).set(rx.len() as f64);
    }
}

/// Make a slot's bytes durable, then (if the slot still holds the page: it may have been freed
/// and its free record is then on the way) the record that names the page.
#[allow(clippy::too_many_arguments)]
fn commit(
    disk: &Disk,
    inner: &Mutex<Inner>,
    at: SlotId,
    key: PageKey,
    len: u32,
    crc32c: u32,
    seq: u64,
    page: u64,
) -> std::io::Result<()> {
    disk.data.flush(u64::from(at.slot) * page, len as usize)?;
    let mut r = [0u8; RECORD as usize];
    r[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    r[4..8].copy_from_slice(&VALID.to_le_bytes());
    r[8..12].copy_from_slice(&len.to_le_bytes());
    r[12..16].copy_from_slice(&crc32c.to_le_bytes());
    r[16..24].copy_from_slice(&key.index.to_le_bytes());
    r[24..40].copy_from_slice(&key.file.0.to_le_bytes());
    r[40..48].copy_from_slice(&seq.to_le_bytes());
    let off = u64::from(at.slot + 1) * RECORD;
    {
        let inner = inner.lock();
        if inner.pages.get(&key).is_none_or(|e| e.at != at) {
            return Ok(());
        }
        disk.index.write(off, &r);
    }
    disk.index.flush(off, RECORD as usize)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hoard_transport::cluster::EvictionKind;

    use super::*;
    use crate::eviction;

    const PAGE: u64 = 64 << 10;

    fn open(dirs: &[PathBuf], pages: u64) -> NvmeTier {
        let config = NvmeConfig {
            dirs: dirs.to_vec(),
            capacity_bytes: pages * PAGE,
            page_size: PAGE,
        };
        NvmeTier::open(&config, eviction::from_kind(EvictionKind::Lru)).expect("open")
    }

    fn key(i: u64) -> PageKey {
        PageKey {
            file: FileId(0xfeed_u128 << 64 | u128::from(i)),
            index: i,
        }
    }

    fn page(i: u64, len: usize) -> Page {
        Page::new(Bytes::from(hoard_pattern(i, len)))
    }

    fn hoard_pattern(seed: u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|j| (j as u64).wrapping_mul(31).wrapping_add(seed * 7) as u8)
            .collect()
    }

    #[test]
    fn durable_pages_come_back_after_a_reopen() {
        let (a, b) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
        let dirs = [a.path().to_owned(), b.path().to_owned()];
        {
            let tier = open(&dirs, 16);
            assert_eq!(tier.capacity_bytes(), 16 * PAGE);
            for i in 0..6 {
                tier.demote(key(i), &page(i, if i == 5 { 1000 } else { PAGE as usize }));
            }
            assert_eq!(tier.len(), 6);
            assert_eq!(tier.read(&key(2)).expect("held"), hoard_pattern(2, PAGE as usize));
            tier.sync();
        }
        let tier = open(&dirs, 16);
        assert_eq!(tier.len(), 6, "every durable page is back");
        for i in 0..6 {
            let want = hoard_pattern(i, if i == 5 { 1000 } else { PAGE as usize });
            assert_eq!(tier.read(&key(i)).expect("recovered"), want, "page {i}");
        }
        assert_eq!(tier.used_bytes(), 5 * PAGE + 1000);
    }

    #[test]
    fn a_slot_whose_bytes_do_not_match_its_record_is_never_served() {
        let dir = tempfile::tempdir().expect("dir");
        let dirs = [dir.path().to_owned()];
        {
            let tier = open(&dirs, 4);
            tier.demote(key(1), &page(1, 5000));
            tier.sync();
            // Damage the bytes behind the tier's back (a torn write, a bad disk).
            let data = FileRegion::open(&dir.path().join("hoard-nvme.data"), 4 * PAGE);
            assert!(data.is_err(), "the tier holds its files locked");
        }
        {
            let data = FileRegion::open(&dir.path().join("hoard-nvme.data"), 4 * PAGE).expect("open");
            let mut b = [0u8; 1];
            for slot in 0..4 {
                data.read(slot * PAGE, &mut b);
                data.write(slot * PAGE, &[b[0] ^ 0xff]);
            }
            data.flush(0, (4 * PAGE) as usize).expect("flush");
        }
        let tier = open(&dirs, 4);
        assert_eq!(tier.len(), 1, "the record survived");
        assert!(tier.read(&key(1)).is_none(), "but its bytes fail the checksum");
        assert_eq!(tier.len(), 0, "and the page is dropped");
        assert_eq!(tier.stats().corrupt.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_full_tier_evicts_its_own_pages_and_stays_within_capacity() {
        let dir = tempfile::tempdir().expect("dir");
        let tier = open(&[dir.path().to_owned()], 8);
        for i in 0..100 {
            tier.demote(key(i), &page(i, PAGE as usize));
            tier.sync();
            assert!(tier.used_bytes() <= tier.capacity_bytes());
        }
        let held: Vec<u64> = (0..100).filter(|i| tier.contains(&key(*i))).collect();
        assert!(!held.is_empty() && held.len() <= 8, "{held:?}");
        for i in held {
            assert_eq!(tier.read(&key(i)).expect("held"), hoard_pattern(i, PAGE as usize));
        }
        assert!(tier.stats().demotions.load(Ordering::Relaxed) > 50);
        // Removal frees the slot for the next page.
        let last = (0..100).rev().find(|i| tier.contains(&key(*i))).expect("one held");
        tier.remove(&key(last));
        assert!(!tier.contains(&key(last)));
    }

    #[test]
    fn a_tier_of_another_page_size_starts_empty() {
        let dir = tempfile::tempdir().expect("dir");
        let dirs = [dir.path().to_owned()];
        {
            let tier = open(&dirs, 4);
            tier.demote(key(1), &page(1, 100));
            tier.sync();
        }
        let config = NvmeConfig {
            dirs: dirs.to_vec(),
            capacity_bytes: 8 * PAGE,
            page_size: PAGE / 2,
        };
        let tier = NvmeTier::open(&config, eviction::from_kind(EvictionKind::Lru)).expect("open");
        assert!(tier.is_empty());
    }
}
