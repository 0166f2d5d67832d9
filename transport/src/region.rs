//! Registered memory regions: a few large mappings at stable addresses, cut into page slots.
//!
//! A worker keeps its cached pages in slots of an [`Arena`]: one shared-memory mapping (a
//! `memfd`, so it can be handed to a client on the same host as a file descriptor, and later
//! registered once for RDMA) of 2 MiB huge pages when the host has them reserved
//! (`/proc/sys/vm/nr_hugepages`, see `scripts/hugepages.sh`), locked in memory; of normal pages
//! otherwise, with one warning.
//!
//! Slots are blocks of a buddy allocator: powers of two from `min_block` (4 KiB) to `max_block`
//! (the page size), so a small file's page takes a small block, and two free buddies merge back
//! into a larger one. A slot is taken with [`Arena::alloc`] (exclusively, to be written) and
//! frozen into [`Bytes`] with [`SlotMut::freeze`]. The slot goes back to the free lists only when
//! the last `Bytes` that views it is dropped, so a page being sent to a client is never
//! overwritten under it. Every return bumps the slot's generation: a location `(region, offset,
//! generation)` handed out earlier no longer matches once the slot holds something else (what
//! remote readers check).
//!
//! This module and its children are the only places in this crate with `unsafe` code: raw
//! `mmap`/`memfd_create` calls and the views of the mapping. The invariant that makes the views
//! sound is that a slot is written only through its one [`SlotMut`], and read only through
//! frozen views, which exist only after the `SlotMut` is gone and keep the slot from being taken
//! again while they live.

mod file;

pub use file::FileRegion;

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

/// Size of a huge page: arenas are sized in multiples of it.
pub const HUGE_PAGE_BYTES: usize = 2 << 20;

/// What backs an arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// 2 MiB huge pages (`MFD_HUGETLB`), locked in memory.
    HugePages,
    /// Normal pages: huge pages were not asked for, or not reserved.
    NormalPages,
}

/// How to build an arena.
#[derive(Debug, Clone)]
pub struct ArenaConfig {
    /// A name for the mapping (shows in `/proc/PID/maps` as `memfd:NAME`).
    pub name: String,
    /// Bytes of page data the arena holds; rounded up to whole `min_block`s (the mapping, for
    /// huge pages, to whole huge pages).
    pub bytes: u64,
    /// Smallest slot: a power of two, at least 4 KiB.
    pub min_block: u64,
    /// Largest slot (the page size): a power of two, at least `min_block`, at most 1 GiB.
    pub max_block: u64,
    /// Try huge pages first.
    pub huge_pages: bool,
}

/// A shared mapping of a file descriptor, unmapped when dropped: read-write for the worker's own
/// memfds, read-only for a client's view of them.
#[derive(Debug)]
struct Mapped {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory that lives as long as the `Mapped`; which bytes of
// it may be written or read concurrently is governed by the slot discipline of `Arena` (one
// writer per slot, readers only of frozen slots, remote readers checking generations), not by
// the thread that holds the pointer.
unsafe impl Send for Mapped {}
// SAFETY: as for `Send`: `&Mapped` gives no access to the bytes by itself.
unsafe impl Sync for Mapped {}

impl Mapped {
    /// `len` bytes of `fd` from its start, shared, read-write if `writable`.
    fn new(fd: BorrowedFd<'_>, len: usize, writable: bool) -> io::Result<Mapped> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // Both sides populate their mappings at once. The owner's (the arena's memfd, created by
        // the worker) allocates the memory tier up front, so its pages belong to the worker and
        // a reader mapping them later allocates nothing; a reader's view is populated because
        // otherwise every first read of a 4 KiB page of it takes a page fault (microseconds,
        // many times the copy). With huge pages it is one fault per 2 MiB anyway.
        let flags = libc::MAP_SHARED | libc::MAP_POPULATE;
        // SAFETY: a new shared mapping of `len` bytes of `fd` at an address the kernel picks;
        // nothing else is mapped there. For a huge-page memfd the kernel reserves the pages now
        // and fails with ENOMEM when too few are reserved (no SIGBUS later). Populating a
        // read-only view of a memfd faults its pages in (allocating those never written).
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        Ok(Mapped { ptr, len })
    }

    /// All of the file behind `fd`, read-only.
    fn whole_file(fd: BorrowedFd<'_>) -> io::Result<Mapped> {
        let len = usize::try_from(std::fs::File::from(fd.try_clone_to_owned()?).metadata()?.len())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "an empty region"));
        }
        Mapped::new(fd, len, false)
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: exactly the range mapped in `new`; no view of it outlives its owner (frozen
        // views hold an `Arc<Arena>`, a reader's copies go into the caller's buffers).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// A new memfd and its read-write mapping.
struct Mapping {
    fd: OwnedFd,
    map: Mapped,
    backing: Backing,
    locked: bool,
}

impl Mapping {
    /// A shared mapping of a new memfd of `len` bytes, of huge pages if `huge`.
    fn new(name: &str, len: usize, huge: bool) -> io::Result<Mapping> {
        let cname = std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
        if huge {
            flags |= libc::MFD_HUGETLB | libc::MFD_HUGE_2MB;
        }
        // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
        let raw = unsafe { libc::memfd_create(cname.as_ptr(), flags) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor memfd_create just returned, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let size = libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `fd` is an open memfd; ftruncate only sizes it.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let map = Mapped::new(fd.as_fd(), len, true)?;
        // From now on nobody else can map it writable or resize it: a local client that is handed
        // the descriptor can read the pages, never change them (our own mapping stays writable).
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_FUTURE_WRITE;
        // SAFETY: `fd` is an open memfd created with MFD_ALLOW_SEALING; F_ADD_SEALS only adds seals.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            tracing::debug!(name, "memfd not sealed: {}", io::Error::last_os_error());
        }
        let backing = if huge { Backing::HugePages } else { Backing::NormalPages };
        // SAFETY: the range is exactly our mapping.
        let locked = huge && unsafe { libc::mlock(map.ptr.as_ptr().cast(), len) } == 0;
        Ok(Mapping {
            fd,
            map,
            backing,
            locked,
        })
    }
}

/// Free blocks by order: `lists[k]` holds the starts (in units of `min_block`) of free blocks of
/// `min_block << k` bytes. A block of order `k` starts at a multiple of `2^k` units.
#[derive(Debug)]
struct Buddy {
    lists: Vec<BTreeSet<u32>>,
    free_units: u64,
}

impl Buddy {
    /// All of `units` free, cut into the largest aligned blocks up to order `max`.
    fn new(units: u32, max: u8) -> Buddy {
        let mut b = Buddy {
            lists: vec![BTreeSet::new(); usize::from(max) + 1],
            free_units: u64::from(units),
        };
        let mut at = 0u32;
        while at < units {
            let order = (0..=max)
                .rev()
                .find(|&k| at.is_multiple_of(1 << k) && u64::from(at) + (1u64 << k) <= u64::from(units))
                .unwrap_or(0);
            b.lists[usize::from(order)].insert(at);
            at += 1 << order;
        }
        b
    }

    /// A free block of order `k`, splitting a larger one if needed.
    fn alloc(&mut self, k: u8) -> Option<u32> {
        let max = self.lists.len() - 1;
        let from = (usize::from(k)..=max).find(|&j| !self.lists[j].is_empty())?;
        let start = self.lists[from].pop_first()?;
        for j in (usize::from(k)..from).rev() {
            self.lists[j].insert(start + (1 << j));
        }
        self.free_units -= 1 << k;
        Some(start)
    }

    /// Block `start` of order `k` is free again: merged with its buddy while that is free.
    fn free(&mut self, start: u32, k: u8) {
        self.free_units += 1 << k;
        let max = self.lists.len() - 1;
        let (mut start, mut k) = (start, usize::from(k));
        while k < max {
            let buddy = start ^ (1 << k);
            if !self.lists[k].remove(&buddy) {
                break;
            }
            start = start.min(buddy);
            k += 1;
        }
        self.lists[k].insert(start);
    }
}

/// A region of page slots. Cheap to share (`Arc<Arena>`).
pub struct Arena {
    id: u32,
    mapping: Mapping,
    min_block: usize,
    max_order: u8,
    units: u32,
    free: Mutex<Buddy>,
    generations: Generations,
}

/// One generation word per smallest block, in a memfd of their own (so a local client can map
/// them read-only beside the arena): the word of a block's first unit changes every time the
/// block is given back.
struct Generations {
    mapping: Mapping,
    units: usize,
}

impl Generations {
    fn new(name: &str, units: usize) -> io::Result<Generations> {
        let len = (units * 8).next_multiple_of(4096);
        Ok(Generations {
            mapping: Mapping::new(&format!("{name}-generations"), len, false)?,
            units,
        })
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page-aligned (so 8-aligned), at least `units * 8` bytes, zeroed
        // by the kernel, and lives as long as `self`; `AtomicU64` has the size and alignment of
        // `u64` and every bit pattern is valid; this process only ever accesses the words
        // through these atomics (a client maps them read-only and only loads).
        unsafe { std::slice::from_raw_parts(self.mapping.map.ptr.as_ptr().cast::<AtomicU64>(), self.units) }
    }
}

/// Where a frozen slot lies: what a client needs to copy a page out of a mapping of the arena,
/// and to tell whether the copy is still that page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// The arena ([`Arena::id`]).
    pub region: u32,
    /// Byte offset of the slot in the arena.
    pub offset: u64,
    /// Bytes of the page.
    pub len: u64,
    /// The slot's generation when the location was made.
    pub generation: u64,
}

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena")
            .field("id", &self.id)
            .field("backing", &self.mapping.backing)
            .field("locked", &self.mapping.locked)
            .field("capacity", &self.capacity_bytes())
            .field("free", &self.free_bytes())
            .finish()
    }
}

impl Arena {
    /// An arena as `config` asks: of huge pages if asked and reserved, else of normal pages with
    /// one warning saying why.
    ///
    /// # Errors
    /// Block sizes that are not powers of two from 4 KiB (`min_block`) to 1 GiB (`max_block`),
    /// a size under one largest block or of 2^32 smallest blocks or more, or a mapping the kernel
    /// refuses even of normal pages.
    pub fn new(id: u32, config: &ArenaConfig) -> io::Result<Arc<Arena>> {
        let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, why.to_owned());
        let (min, max) = (config.min_block, config.max_block);
        if !min.is_power_of_two() || !max.is_power_of_two() || min < 4096 || max < min || max > 1 << 30 {
            return Err(invalid(
                "block sizes must be powers of two, 4 KiB <= min_block <= max_block <= 1 GiB",
            ));
        }
        let units = u32::try_from(config.bytes.div_ceil(min))
            .ok()
            .filter(|u| u64::from(*u) * min >= max)
            .ok_or_else(|| invalid("an arena holds at least one largest block and fewer than 2^32 smallest"))?;
        let min_block = usize::try_from(min).map_err(|_| invalid("block too large"))?;
        let len = usize::try_from(u64::from(units) * min).map_err(|_| invalid("arena too large"))?;
        let max_order = u8::try_from((max / min).trailing_zeros()).map_err(|_| invalid("block sizes"))?;
        let mapping = if config.huge_pages {
            let huge_len = len.next_multiple_of(HUGE_PAGE_BYTES);
            match Mapping::new(&config.name, huge_len, true) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(
                        arena = config.name,
                        bytes = huge_len,
                        "huge pages not available ({e}); the memory tier uses normal pages, not locked \
                         (reserve huge pages: scripts/hugepages.sh)"
                    );
                    Mapping::new(&config.name, len, false)?
                }
            }
        } else {
            Mapping::new(&config.name, len, false)?
        };
        if mapping.backing == Backing::HugePages && !mapping.locked {
            tracing::warn!(arena = config.name, "could not lock the huge-page arena in memory");
        }
        Ok(Arc::new(Arena {
            id,
            mapping,
            min_block,
            max_order,
            units,
            free: Mutex::new(Buddy::new(units, max_order)),
            generations: Generations::new(&config.name, units as usize)?,
        }))
    }

    /// The region id locations name.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// What backs the arena.
    pub fn backing(&self) -> Backing {
        self.mapping.backing
    }

    /// Whether the arena is locked in memory.
    pub fn locked(&self) -> bool {
        self.mapping.locked
    }

    /// Largest slot.
    pub fn max_block(&self) -> u64 {
        (self.min_block as u64) << self.max_order
    }

    /// Bytes the slots hold in all.
    pub fn capacity_bytes(&self) -> u64 {
        u64::from(self.units) * self.min_block as u64
    }

    /// Bytes in free blocks now.
    pub fn free_bytes(&self) -> u64 {
        self.free.lock().free_units * self.min_block as u64
    }

    /// Bytes of the block a slot of `len` bytes takes (`None`: larger than the largest).
    pub fn block_bytes(&self, len: u64) -> Option<u64> {
        let order = self.order_of(len)?;
        Some((self.min_block as u64) << order)
    }

    /// Bytes of the mapping (the slots, rounded up to whole huge pages).
    pub fn mapped_bytes(&self) -> u64 {
        self.mapping.map.len as u64
    }

    /// The memfd behind the arena, to hand to a local client (it maps it read-only).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.mapping.fd.as_fd()
    }

    /// The memfd of the generation words, to hand to a local client with [`Arena::fd`].
    pub fn generations_fd(&self) -> BorrowedFd<'_> {
        self.generations.mapping.fd.as_fd()
    }

    /// Smallest block: the unit of offsets and generation words.
    pub fn min_block(&self) -> u64 {
        self.min_block as u64
    }

    /// The location of `view`, a frozen slot of this arena as [`SlotMut::freeze`] made it (it
    /// starts where its slot starts); `None` for bytes elsewhere. While `view` lives its slot
    /// cannot be given back, so the generation is the slot's current one.
    pub fn locate(&self, view: &Bytes) -> Option<Location> {
        let base = self.mapping.map.ptr.as_ptr() as usize;
        let at = (view.as_ptr() as usize).checked_sub(base)?;
        let end = at.checked_add(view.len())?;
        if end as u64 > self.capacity_bytes() || at % self.min_block != 0 {
            return None;
        }
        let generation = self.generations.words()[at / self.min_block].load(Ordering::Acquire);
        Some(Location {
            region: self.id,
            offset: at as u64,
            len: view.len() as u64,
            generation,
        })
    }

    /// The generation of the slot starting at byte `offset` now: it changes every time the
    /// slot is given back.
    pub fn generation(&self, offset: u64) -> Option<u64> {
        let unit = usize::try_from(offset / self.min_block as u64).ok()?;
        self.generations.words().get(unit).map(|g| g.load(Ordering::Acquire))
    }

    /// A free slot of at least `len` bytes, to be written and then frozen; `None` when `len` is
    /// larger than the largest block or no free block is large enough (the space is held by
    /// cached pages or by views still being read, or cut into smaller blocks).
    pub fn alloc(self: &Arc<Self>, len: u64) -> Option<SlotMut> {
        let order = self.order_of(len)?;
        let unit = self.free.lock().alloc(order)?;
        // The block's generation was bumped when it was given back (before the free list's
        // lock passed it here). This fence, before any write into the block, pairs with the
        // acquire fence a reader puts between its copy and its second look at the generation:
        // a reader that copied any of the bytes written next also sees the bump.
        std::sync::atomic::fence(Ordering::Release);
        Some(SlotMut {
            arena: self.clone(),
            unit,
            order,
        })
    }

    /// The order of the smallest block holding `len` bytes.
    fn order_of(&self, len: u64) -> Option<u8> {
        let units = len.div_ceil(self.min_block as u64).max(1);
        let order = u8::try_from(units.next_power_of_two().trailing_zeros()).ok()?;
        (order <= self.max_order).then_some(order)
    }

    /// Byte offset and length of the block at `unit` of `order`.
    fn span(&self, unit: u32, order: u8) -> (usize, usize) {
        (unit as usize * self.min_block, self.min_block << order)
    }

    /// The block is no longer viewed or written: a new generation, and free.
    fn give_back(&self, unit: u32, order: u8) {
        // Bumped before the block can be handed out again: a copy that overlaps any later
        // write into these bytes sees a new word when it checks after copying.
        self.generations.words()[unit as usize].fetch_add(1, Ordering::AcqRel);
        self.free.lock().free(unit, order);
    }
}

/// A slot taken for writing: the only access to its bytes until it is frozen or dropped (dropped,
/// it goes back to the free lists).
pub struct SlotMut {
    arena: Arc<Arena>,
    unit: u32,
    order: u8,
}

impl fmt::Debug for SlotMut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotMut")
            .field("arena", &self.arena.id)
            .field("offset", &self.offset())
            .field("bytes", &self.arena.span(self.unit, self.order).1)
            .finish()
    }
}

impl SlotMut {
    /// The slot's byte offset in its arena.
    pub fn offset(&self) -> u64 {
        self.arena.span(self.unit, self.order).0 as u64
    }

    /// The slot's bytes, to fill (the whole block: at least the length asked for).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let (offset, len) = self.arena.span(self.unit, self.order);
        // SAFETY: the block lies inside the mapping (its units are below `units`, and the
        // mapping is `units * min_block` bytes or more), and this `SlotMut` is its only handle:
        // the buddy lists gave the block out once, no frozen view of it exists (views are made
        // only by consuming the `SlotMut`), and it returns to the lists only when the last view
        // is dropped.
        unsafe { std::slice::from_raw_parts_mut(self.arena.mapping.map.ptr.as_ptr().add(offset), len) }
    }

    /// The first `len` bytes of the slot as [`Bytes`]; the slot stays taken until every clone
    /// of it is dropped. Also the slot's generation now, for locations handed out.
    ///
    /// # Panics
    /// When `len` is larger than the slot.
    pub fn freeze(self, len: usize) -> (Bytes, u64) {
        let block = self.arena.span(self.unit, self.order).1;
        assert!(len <= block, "a frozen view longer than its slot");
        let generation = self.arena.generations.words()[self.unit as usize].load(Ordering::Acquire);
        let view = Frozen {
            arena: self.arena.clone(),
            unit: self.unit,
            order: self.order,
            len,
        };
        // The `Frozen` now owns the slot: do not give it back when `self` goes.
        std::mem::forget(self);
        (Bytes::from_owner(view), generation)
    }
}

impl Drop for SlotMut {
    fn drop(&mut self) {
        self.arena.give_back(self.unit, self.order);
    }
}

/// The owner behind a frozen slot's `Bytes`: gives the slot back when the last view goes.
struct Frozen {
    arena: Arc<Arena>,
    unit: u32,
    order: u8,
    len: usize,
}

impl AsRef<[u8]> for Frozen {
    fn as_ref(&self) -> &[u8] {
        let offset = self.arena.span(self.unit, self.order).0;
        // SAFETY: inside the mapping (as in `SlotMut::as_mut_slice`, and `len` is at most the
        // block); the slot's `SlotMut` was consumed by `freeze`, so nothing writes it while this
        // view lives, and it is not given back (so not handed out again) before this owner is
        // dropped.
        unsafe { std::slice::from_raw_parts(self.arena.mapping.map.ptr.as_ptr().add(offset), self.len) }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.arena.give_back(self.unit, self.order);
    }
}

impl From<&crate::wire::PageLocation> for Location {
    fn from(p: &crate::wire::PageLocation) -> Location {
        Location {
            region: p.region,
            offset: p.offset,
            len: p.len,
            generation: p.generation,
        }
    }
}

/// A copy from a mapped region that did not see one page whole: the slot was given back (and
/// maybe reused) before or while it was copied. Ask the worker again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the slot at offset {offset} of region {region} changed (generation {expected} is gone)")]
pub struct Stale {
    /// The region.
    pub region: u32,
    /// The slot's offset.
    pub offset: u64,
    /// The generation the location had.
    pub expected: u64,
    /// The slot changed while it was being copied (it was still the page when the copy began):
    /// the copy may be torn.
    pub during_copy: bool,
}

/// A client's read-only view of a worker's arena (its data and its generation words, mapped from
/// the two descriptors the worker hands over): copies pages by [`Location`] without asking the
/// worker, and says when a copy cannot be trusted.
pub struct RegionReader {
    id: u32,
    data: Mapped,
    generations: Mapped,
    min_block: u64,
}

impl fmt::Debug for RegionReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegionReader")
            .field("id", &self.id)
            .field("bytes", &self.data.len)
            .finish()
    }
}

impl RegionReader {
    /// Map region `id` from its data and generation descriptors ([`Arena::fd`],
    /// [`Arena::generations_fd`]), read-only.
    ///
    /// # Errors
    /// A descriptor that cannot be mapped, or a `min_block` that is not a power of two.
    pub fn map(id: u32, data: BorrowedFd<'_>, generations: BorrowedFd<'_>, min_block: u64) -> io::Result<RegionReader> {
        if !min_block.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "min_block must be a power of two",
            ));
        }
        Ok(RegionReader {
            id,
            data: Mapped::whole_file(data)?,
            generations: Mapped::whole_file(generations)?,
            min_block,
        })
    }

    /// The region id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Bytes of the region's data mapped.
    pub fn mapped_bytes(&self) -> u64 {
        self.data.len as u64
    }

    /// The generation word of the slot at `offset`, loaded with acquire ordering.
    fn generation(&self, offset: u64) -> Option<u64> {
        let unit = usize::try_from(offset / self.min_block).ok()?;
        if (unit + 1) * 8 > self.generations.len {
            return None;
        }
        // SAFETY: in bounds (checked above) and 8-aligned (page-aligned base); the worker only
        // writes the word atomically, and an atomic load from a read-only mapping is a plain load.
        let word = unsafe { &*self.generations.ptr.as_ptr().cast::<AtomicU64>().add(unit) };
        Some(word.load(Ordering::Acquire))
    }

    /// Copy the page at `at` into `dst` (exactly `at.len` bytes), checking the slot's generation
    /// before and after: `Ok` only when the bytes copied are the page the location named, whole.
    ///
    /// # Errors
    /// [`Stale`] when the slot was given back before or during the copy (or the location is not
    /// inside this region): `dst` then holds garbage and must not be used.
    ///
    /// # Panics
    /// When `dst` is not `at.len` bytes long.
    pub fn copy_into(&self, at: &Location, dst: &mut [u8]) -> Result<(), Stale> {
        assert_eq!(dst.len() as u64, at.len, "the buffer must be the page's length");
        self.copy_part_into(at, 0, dst)
    }

    /// As [`RegionReader::copy_into`], for bytes `[from, from + dst.len())` of the page.
    ///
    /// # Errors
    /// As [`RegionReader::copy_into`].
    ///
    /// # Panics
    /// When the part is not inside the page.
    pub fn copy_part_into(&self, at: &Location, from: u64, dst: &mut [u8]) -> Result<(), Stale> {
        let src = self.part(at, from, dst.len() as u64)?;
        // SAFETY: `src` is inside the mapping (`part` checked it) and `dst` is a distinct buffer
        // of the same length. See `part` for the bytes changing under the copy.
        unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
        self.check_after(at)
    }

    /// As [`RegionReader::copy_part_into`], appending `len` bytes to `buf` (into its spare
    /// capacity, never zeroing it first). On an error `buf` is as it was.
    ///
    /// # Errors
    /// As [`RegionReader::copy_into`].
    ///
    /// # Panics
    /// When the part is not inside the page.
    pub fn append_part(&self, at: &Location, from: u64, len: usize, buf: &mut BytesMut) -> Result<(), Stale> {
        let src = self.part(at, from, len as u64)?;
        buf.reserve(len);
        let spare = buf.spare_capacity_mut();
        // SAFETY: `src` is inside the mapping (`part` checked it); `spare` has room for `len`
        // bytes (reserved above) and is not the mapping. Writing `MaybeUninit<u8>` from `u8`
        // initialises it.
        unsafe { std::ptr::copy_nonoverlapping(src, spare.as_mut_ptr().cast::<u8>(), len) };
        self.check_after(at)?;
        // SAFETY: the `len` bytes after the buffer's length were initialised just above.
        unsafe { buf.set_len(buf.len() + len) };
        Ok(())
    }

    /// Run `f` on bytes `[from, from + len)` of the page at `at`, in place (no copy), and return
    /// its result only if the slot still held the page when `f` was done. For pages the worker
    /// holds for the caller (a lease), so that the check after is a formality; without one the
    /// bytes may change under `f`.
    ///
    /// # Errors
    /// As [`RegionReader::copy_into`]: then `f`'s result is dropped, and whatever `f` saw must
    /// not be trusted.
    ///
    /// # Panics
    /// When the part is not inside the page.
    pub fn with_part<R>(&self, at: &Location, from: u64, len: usize, f: impl FnOnce(&[u8]) -> R) -> Result<R, Stale> {
        let src = self.part(at, from, len as u64)?;
        // SAFETY: `src` is `len` readable bytes inside the mapping (`part` checked it), which
        // lives as long as `self`, which the borrow passed to `f` cannot outlive. Nothing here
        // writes them; the worker may (see `part`), which the check after catches.
        let view = unsafe { std::slice::from_raw_parts(src, len) };
        let result = f(view);
        self.check_after(at)?;
        Ok(result)
    }

    /// The start of bytes `[from, from + len)` of the page at `at`, once the location is checked
    /// to lie inside this region and to be current. The bytes may change under a copy from it
    /// (the worker can reuse the slot at any time); [`RegionReader::check_after`] says whether
    /// they did, and torn copies are then thrown away, never returned as the page. (The memory is
    /// shared with another process, outside what the compiler assumes about it; the acquire
    /// fence in `check_after` keeps the copy's loads before the generation's second load.)
    fn part(&self, at: &Location, from: u64, len: u64) -> Result<*const u8, Stale> {
        assert!(
            from.checked_add(len).is_some_and(|end| end <= at.len),
            "the part must lie inside the page"
        );
        let inside = at.offset.is_multiple_of(self.min_block)
            && at
                .offset
                .checked_add(at.len)
                .is_some_and(|end| end <= self.data.len as u64);
        if at.region != self.id || !inside || self.generation(at.offset) != Some(at.generation) {
            return Err(self.stale(at, false));
        }
        // SAFETY: `at.offset + from` is inside the mapping: the page is (checked above) and the
        // part lies inside the page (asserted above).
        Ok(unsafe { self.data.ptr.as_ptr().add((at.offset + from) as usize) }.cast_const())
    }

    /// Whether the slot still holds the page, after a copy of it: `Err` when the copy may be
    /// torn.
    fn check_after(&self, at: &Location) -> Result<(), Stale> {
        std::sync::atomic::fence(Ordering::Acquire);
        if self.generation(at.offset) == Some(at.generation) {
            Ok(())
        } else {
            Err(self.stale(at, true))
        }
    }

    fn stale(&self, at: &Location, during_copy: bool) -> Stale {
        Stale {
            region: self.id,
            offset: at.offset,
            expected: at.generation,
            during_copy,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    const K4: u64 = 4096;

    fn arena(bytes: u64, max_block: u64, huge: bool) -> Arc<Arena> {
        let config = ArenaConfig {
            name: "hoard-test".into(),
            bytes,
            min_block: K4,
            max_block,
            huge_pages: huge,
        };
        Arena::new(7, &config).expect("arena")
    }

    #[test]
    fn whoever_is_handed_the_descriptors_can_map_them_read_only_and_never_writable() {
        let a = arena(16 * K4, 4 * K4, false);
        let len = a.mapped_bytes() as usize;
        for fd in [a.fd(), a.generations_fd()] {
            let e = Mapped::new(fd, len.min(4096), true).expect_err("sealed against writable mappings");
            assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
            assert!(Mapped::new(fd, 4096, false).is_ok());
        }
    }

    #[test]
    fn slots_come_back_with_a_new_generation_when_their_last_view_goes() {
        let a = arena(16 * K4, 4 * K4, false);
        assert_eq!(
            (a.capacity_bytes(), a.free_bytes(), a.max_block(), a.id()),
            (16 * K4, 16 * K4, 4 * K4, 7)
        );
        let mut s = a.alloc(5).expect("a free slot");
        let offset = s.offset();
        s.as_mut_slice()[..5].copy_from_slice(b"hello");
        let g0 = a.generation(offset).expect("generation");
        let (view, g) = s.freeze(5);
        assert_eq!((&view[..], g, a.free_bytes()), (&b"hello"[..], g0, 15 * K4));
        let clone = view.slice(1..3);
        drop(view);
        assert_eq!(a.free_bytes(), 15 * K4, "a clone still views the slot");
        assert_eq!(&clone[..], b"el");
        drop(clone);
        assert_eq!(a.free_bytes(), 16 * K4, "back once the last view is gone");
        assert_eq!(a.generation(offset), Some(g0 + 1), "a new generation");
        let unused = a.alloc(K4).expect("slot");
        drop(unused);
        assert_eq!(
            a.free_bytes(),
            16 * K4,
            "a slot taken and dropped unwritten comes back too"
        );
        assert!(a.alloc(4 * K4 + 1).is_none(), "larger than the largest block");
        assert_eq!(a.block_bytes(3 * K4), Some(4 * K4));
        assert_eq!(a.block_bytes(0), Some(K4));
    }

    #[test]
    fn small_pages_take_small_blocks_and_free_buddies_merge() {
        // 8 units, blocks up to 4 units: two blocks of 4 at the start.
        let a = arena(8 * K4, 4 * K4, false);
        let smalls: Vec<SlotMut> = (0..8).map(|_| a.alloc(100).expect("a 4 KiB block")).collect();
        assert!(a.alloc(1).is_none(), "full");
        let mut offsets: Vec<u64> = smalls.iter().map(SlotMut::offset).collect();
        offsets.sort_unstable();
        assert_eq!(offsets, (0..8).map(|i| i * K4).collect::<Vec<_>>(), "every unit once");
        drop(smalls);
        let big = [a.alloc(4 * K4).expect("merged"), a.alloc(4 * K4).expect("merged")];
        assert!(a.alloc(1).is_none(), "the merged blocks fill the arena");
        drop(big);
        assert_eq!(a.free_bytes(), 8 * K4);
    }

    /// Random allocations and frees against a model: blocks never overlap, each is aligned to
    /// its size, what is written stays, and once all are freed the arena is whole again.
    #[test]
    fn random_allocations_never_overlap_and_all_merge_back() {
        let a = arena(64 * K4 + 3 * K4, 16 * K4, false);
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut live: Vec<(Bytes, u64, u8)> = Vec::new();
        for round in 0..20_000u32 {
            if rng.random_bool(0.55) {
                let len = rng.random_range(1..=16 * K4);
                if let Some(mut s) = a.alloc(len) {
                    let block = a.block_bytes(len).expect("fits");
                    assert_eq!(s.offset() % block, 0, "aligned to its size");
                    let fill = (round % 251) as u8;
                    let n = usize::try_from(len).expect("len");
                    s.as_mut_slice()[..n].fill(fill);
                    let offset = s.offset();
                    let (view, _) = s.freeze(n);
                    live.push((view, offset, fill));
                }
            } else if !live.is_empty() {
                let i = rng.random_range(0..live.len());
                let (view, _, fill) = live.swap_remove(i);
                assert!(view.iter().all(|b| *b == fill), "a block was written by another");
            }
            let mut spans: Vec<(u64, u64)> = live
                .iter()
                .map(|(v, o, _)| (*o, a.block_bytes(v.len() as u64).expect("fits")))
                .collect();
            spans.sort_unstable();
            for w in spans.windows(2) {
                assert!(w[0].0 + w[0].1 <= w[1].0, "blocks overlap: {w:?}");
            }
            let used: u64 = spans.iter().map(|s| s.1).sum();
            assert_eq!(used + a.free_bytes(), a.capacity_bytes());
        }
        for (view, _, fill) in live.drain(..) {
            assert!(view.iter().all(|b| *b == fill));
        }
        assert_eq!(a.free_bytes(), a.capacity_bytes());
        let whole: Vec<SlotMut> = (0..4)
            .map(|_| a.alloc(16 * K4).expect("largest blocks again"))
            .collect();
        assert!(a.alloc(16 * K4).is_none(), "3 units of tail never make a largest block");
        drop(whole);
    }

    #[test]
    fn without_reserved_huge_pages_the_arena_falls_back_to_normal_pages() {
        // 3 MiB asks for two huge pages; on a host with none reserved this is the fallback, on
        // one with enough it is huge pages, locked. Either way the arena works and the fd is
        // shareable.
        let free_huge_pages = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("HugePages_Free:").map(|v| v.trim().parse::<u64>().ok()))
            })
            .flatten()
            .unwrap_or(0);
        let a = arena(3 << 20, 1 << 20, true);
        if free_huge_pages == 0 {
            assert_eq!(a.backing(), Backing::NormalPages, "no huge pages reserved");
        } else if free_huge_pages >= 4 {
            assert_eq!(
                (a.backing(), a.locked()),
                (Backing::HugePages, true),
                "{free_huge_pages} free"
            );
        }
        match a.backing() {
            Backing::HugePages => assert_eq!(a.mapped_bytes(), 4 << 20),
            Backing::NormalPages => assert_eq!(a.mapped_bytes(), 3 << 20),
        }
        let mut s = a.alloc(1 << 20).expect("slot");
        s.as_mut_slice()[(1 << 20) - 1] = 9;
        let (v, _) = s.freeze(1 << 20);
        assert_eq!(v[(1 << 20) - 1], 9);
        let meta = std::fs::metadata(format!("/proc/self/fd/{}", a.fd().as_raw_fd())).expect("fd");
        assert_eq!(meta.len(), a.mapped_bytes(), "the memfd is the arena");
    }

    #[test]
    fn a_reader_copies_a_located_page_and_refuses_one_given_back_or_elsewhere() {
        let a = arena(8 * K4, 2 * K4, false);
        let reader = RegionReader::map(7, a.fd(), a.generations_fd(), K4).expect("map");
        let mut s = a.alloc(5000).expect("slot");
        s.as_mut_slice()[..5000].fill(3);
        let (view, generation) = s.freeze(5000);
        let at = a.locate(&view).expect("located");
        assert_eq!((at.region, at.len, at.generation), (7, 5000, generation));
        assert_eq!(a.locate(&view.slice(1..)), None, "not where a slot starts");
        assert_eq!(a.locate(&Bytes::from_static(b"elsewhere")), None);
        let mut buf = vec![0u8; 5000];
        reader.copy_into(&at, &mut buf).expect("a live page copies");
        assert!(buf.iter().all(|b| *b == 3));
        for bad in [
            Location { region: 8, ..at },
            Location {
                offset: 7 * K4,
                len: 2 * K4,
                ..at
            },
            Location { offset: 1, ..at },
        ] {
            let mut buf = vec![0u8; usize::try_from(bad.len).expect("len")];
            assert!(reader.copy_into(&bad, &mut buf).is_err(), "{bad:?}");
        }
        drop(view);
        let e = reader.copy_into(&at, &mut buf).expect_err("given back");
        assert!(!e.during_copy, "it changed before the copy began");
    }

    #[test]
    fn bad_sizes_are_refused() {
        for (bytes, min, max) in [
            (0, K4, K4),
            (K4, K4, 2 * K4),
            (1 << 20, 1024, K4),
            (1 << 20, 3 * K4, 3 * K4),
            (1 << 20, 2 * K4, K4),
            (4 << 30, K4, 2 << 30),
        ] {
            let config = ArenaConfig {
                name: "bad".into(),
                bytes,
                min_block: min,
                max_block: max,
                huge_pages: false,
            };
            assert!(
                Arena::new(1, &config).is_err(),
                "{bytes} bytes in blocks of {min}..{max}"
            );
        }
    }
}

/// Memory that stays mapped, at one address, for as long as the value lives: what may be
/// registered with an RDMA device (which reads it by address, behind the compiler's back).
///
/// # Safety
/// [`StableMemory::memory`] must always return the same range, and that range must stay mapped
/// (readable; writable too when it is registered for local writes) until the value is dropped.
pub unsafe trait StableMemory: Send + Sync + fmt::Debug {
    /// Start and length of the memory.
    fn memory(&self) -> (NonNull<u8>, usize);
}

/// An arena's page data, as [`StableMemory`] (holding the arena).
#[derive(Debug)]
pub struct ArenaData(pub Arc<Arena>);

/// An arena's generation words, as [`StableMemory`] (holding the arena).
#[derive(Debug)]
pub struct ArenaGenerations(pub Arc<Arena>);

// SAFETY: the arena's mapping is made once, never moved or resized, and unmapped only when the
// arena (held by the `Arc`) is dropped.
unsafe impl StableMemory for ArenaData {
    fn memory(&self) -> (NonNull<u8>, usize) {
        (self.0.mapping.map.ptr, self.0.mapping.map.len)
    }
}

// SAFETY: as for `ArenaData`: the generation words' mapping lives as long as the arena.
unsafe impl StableMemory for ArenaGenerations {
    fn memory(&self) -> (NonNull<u8>, usize) {
        let words = &self.0.generations.mapping.map;
        (words.ptr, words.len)
    }
}
