//! Registered memory regions: a few large mappings at stable addresses, cut into page slots.
//!
//! A worker keeps its cached pages in slots of an [`Arena`]: one shared-memory mapping (a
//! `memfd`, so it can be handed to a client on the same host as a file descriptor, and later
//! registered once for RDMA) of 2 MiB huge pages when the host has them reserved
//! (`/proc/sys/vm/nr_hugepages`, see `scripts/hugepages.sh`), locked in memory; of normal pages
//! otherwise, with one warning.
//!
//! A slot is taken with [`Arena::take`] (exclusively, to be written) and frozen into [`Bytes`]
//! with [`SlotMut::freeze`]. The slot goes back to the free list only when the last `Bytes` that
//! views it is dropped, so a page being sent to a client is never overwritten under it. Every
//! return bumps the slot's generation: a location `(region, slot, generation)` handed out earlier
//! no longer matches once the slot holds something else (what remote readers check).
//!
//! This module and its children are the only places in this crate with `unsafe` code: raw
//! `mmap`/`memfd_create` calls and the views of the mapping. The invariant that makes the views
//! sound is that a slot is written only through its one [`SlotMut`], and read only through
//! frozen views, which exist only after the `SlotMut` is gone and keep the slot from being taken
//! again while they live.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
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
    /// Bytes of page data the arena holds; rounded up to whole slots (and, for huge pages, to
    /// whole huge pages).
    pub bytes: u64,
    /// Bytes per slot (the page size).
    pub slot_bytes: u64,
    /// Try huge pages first.
    pub huge_pages: bool,
}

/// One mapping of a `memfd`, read-write, shared.
struct Mapping {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
    locked: bool,
}

// SAFETY: the mapping is plain shared memory that lives as long as the `Mapping`; which bytes of
// it may be written or read concurrently is governed by the slot discipline of `Arena` (one
// writer per slot, readers only of frozen slots), not by the thread that holds the pointer.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`: `&Mapping` gives no access to the bytes by itself.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// A shared mapping of a new memfd of `len` bytes, of huge pages if `huge`.
    fn new(name: &str, len: usize, huge: bool) -> io::Result<Mapping> {
        let cname = std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut flags = libc::MFD_CLOEXEC;
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
        // SAFETY: a new shared mapping of `len` bytes of our own memfd at an address the kernel
        // picks; nothing else is mapped there. For huge pages the kernel reserves the pages now
        // and fails with ENOMEM when too few are reserved (no SIGBUS later).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let backing = if huge { Backing::HugePages } else { Backing::NormalPages };
        let mut mapping = Mapping {
            fd,
            ptr,
            len,
            backing,
            locked: false,
        };
        if huge {
            // SAFETY: the range is exactly our mapping.
            mapping.locked = unsafe { libc::mlock(mapping.ptr.as_ptr().cast(), len) } == 0;
        }
        Ok(mapping)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range is exactly the mapping made in `new`; no view of it outlives the
        // `Arena` that owns this mapping (frozen views hold an `Arc<Arena>`).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// A region of page slots. Cheap to share (`Arc<Arena>`).
pub struct Arena {
    id: u32,
    mapping: Mapping,
    slot_bytes: usize,
    slots: u32,
    free: Mutex<Vec<u32>>,
    generations: Box<[AtomicU64]>,
}

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena")
            .field("id", &self.id)
            .field("backing", &self.mapping.backing)
            .field("locked", &self.mapping.locked)
            .field("slots", &self.slots)
            .field("slot_bytes", &self.slot_bytes)
            .field("free", &self.free.lock().len())
            .finish()
    }
}

impl Arena {
    /// An arena as `config` asks: of huge pages if asked and reserved, else of normal pages with
    /// one warning saying why.
    ///
    /// # Errors
    /// A slot size of 0 or over 1 GiB, a size of no slot at all, or a mapping the kernel
    /// refuses even of normal pages.
    pub fn new(id: u32, config: &ArenaConfig) -> io::Result<Arc<Arena>> {
        let slot_bytes = usize::try_from(config.slot_bytes)
            .ok()
            .filter(|s| (1..=1 << 30).contains(s))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "slot size must be 1 B to 1 GiB"))?;
        let wanted = usize::try_from(config.bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "arena too large"))?;
        let slots = wanted.div_ceil(slot_bytes);
        let slots_u32 = u32::try_from(slots)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an arena holds 1 to 2^32-1 slots"))?;
        let len = slots * slot_bytes;
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
            slot_bytes,
            slots: slots_u32,
            // Popped from the end: slot 0 is taken first.
            free: Mutex::new((0..slots_u32).rev().collect()),
            generations: (0..slots).map(|_| AtomicU64::new(0)).collect(),
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

    /// Bytes per slot.
    pub fn slot_bytes(&self) -> u64 {
        self.slot_bytes as u64
    }

    /// Number of slots.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Slots free now.
    pub fn free_slots(&self) -> u32 {
        u32::try_from(self.free.lock().len()).unwrap_or(u32::MAX)
    }

    /// Bytes of the mapping (the slots, rounded up to whole huge pages).
    pub fn mapped_bytes(&self) -> u64 {
        self.mapping.len as u64
    }

    /// The memfd behind the arena, to hand to a local client (it maps it read-only).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.mapping.fd.as_fd()
    }

    /// The generation of slot `index` now: it changes every time the slot is given back.
    pub fn generation(&self, index: u32) -> Option<u64> {
        self.generations.get(index as usize).map(|g| g.load(Ordering::Acquire))
    }

    /// A free slot, to be written and then frozen; `None` when every slot is in use (held by a
    /// cached page or by a view still being read).
    pub fn take(self: &Arc<Self>) -> Option<SlotMut> {
        let index = self.free.lock().pop()?;
        Some(SlotMut {
            arena: self.clone(),
            index,
        })
    }

    /// Byte offset of slot `index` in the mapping.
    fn offset(&self, index: u32) -> usize {
        index as usize * self.slot_bytes
    }

    /// Slot `index` is no longer viewed or written: a new generation, and free.
    fn give_back(&self, index: u32) {
        self.generations[index as usize].fetch_add(1, Ordering::AcqRel);
        self.free.lock().push(index);
    }
}

/// A slot taken for writing: the only access to its bytes until it is frozen or dropped (dropped,
/// it goes back to the free list).
pub struct SlotMut {
    arena: Arc<Arena>,
    index: u32,
}

impl fmt::Debug for SlotMut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotMut")
            .field("arena", &self.arena.id)
            .field("index", &self.index)
            .finish()
    }
}

impl SlotMut {
    /// The slot's index in its arena.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The slot's bytes, to fill.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let offset = self.arena.offset(self.index);
        // SAFETY: the slot lies inside the mapping (index < slots, offset + slot_bytes <= len),
        // and this `SlotMut` is its only handle: it was popped from the free list, and no frozen
        // view of it exists (views are made only by consuming the `SlotMut`, and the slot
        // returns to the free list only when the last view is dropped).
        unsafe { std::slice::from_raw_parts_mut(self.arena.mapping.ptr.as_ptr().add(offset), self.arena.slot_bytes) }
    }

    /// The first `len` bytes of the slot as [`Bytes`]; the slot stays taken until every clone
    /// of it is dropped. Also the slot's generation now, for locations handed out.
    ///
    /// # Panics
    /// When `len` is larger than the slot.
    pub fn freeze(self, len: usize) -> (Bytes, u64) {
        assert!(len <= self.arena.slot_bytes, "a frozen view longer than its slot");
        let generation = self.arena.generations[self.index as usize].load(Ordering::Acquire);
        let view = Frozen {
            arena: self.arena.clone(),
            index: self.index,
            len,
        };
        // The `Frozen` now owns the slot: do not give it back when `self` goes.
        std::mem::forget(self);
        (Bytes::from_owner(view), generation)
    }
}

impl Drop for SlotMut {
    fn drop(&mut self) {
        self.arena.give_back(self.index);
    }
}

/// The owner behind a frozen slot's `Bytes`: gives the slot back when the last view goes.
struct Frozen {
    arena: Arc<Arena>,
    index: u32,
    len: usize,
}

impl AsRef<[u8]> for Frozen {
    fn as_ref(&self) -> &[u8] {
        let offset = self.arena.offset(self.index);
        // SAFETY: inside the mapping (as in `SlotMut::as_mut_slice`, and len <= slot_bytes); the
        // slot's `SlotMut` was consumed by `freeze`, so nothing writes it while this view lives,
        // and it is not given back (so not taken again) before this owner is dropped.
        unsafe { std::slice::from_raw_parts(self.arena.mapping.ptr.as_ptr().add(offset), self.len) }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.arena.give_back(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arena(bytes: u64, slot: u64, huge: bool) -> Arc<Arena> {
        let config = ArenaConfig {
            name: "hoard-test".into(),
            bytes,
            slot_bytes: slot,
            huge_pages: huge,
        };
        Arena::new(7, &config).expect("arena")
    }

    #[test]
    fn slots_are_taken_once_and_come_back_with_a_new_generation_when_their_last_view_goes() {
        let a = arena(4 << 10, 1 << 10, false);
        assert_eq!((a.slots(), a.free_slots(), a.slot_bytes(), a.id()), (4, 4, 1024, 7));
        let mut s = a.take().expect("a free slot");
        let index = s.index();
        s.as_mut_slice()[..5].copy_from_slice(b"hello");
        let g0 = a.generation(index).expect("generation");
        let (view, g) = s.freeze(5);
        assert_eq!((&view[..], g, a.free_slots()), (&b"hello"[..], g0, 3));
        let clone = view.slice(1..3);
        drop(view);
        assert_eq!(a.free_slots(), 3, "a clone still views the slot");
        assert_eq!(&clone[..], b"el");
        drop(clone);
        assert_eq!(a.free_slots(), 4, "back once the last view is gone");
        assert_eq!(a.generation(index), Some(g0 + 1), "a new generation");
        let unused = a.take().expect("slot");
        drop(unused);
        assert_eq!(a.free_slots(), 4, "a slot taken and dropped unwritten comes back too");
    }

    #[test]
    fn a_full_arena_refuses_until_a_slot_comes_back_and_slots_never_overlap() {
        let a = arena(3 * 1000, 1000, false);
        let mut views = Vec::new();
        while let Some(mut s) = a.take() {
            let fill = s.index() as u8 + 1;
            s.as_mut_slice().fill(fill);
            views.push(s.freeze(1000).0);
        }
        assert_eq!(views.len(), 3);
        assert!(a.take().is_none(), "every slot is viewed");
        for v in &views {
            assert!(v.iter().all(|b| *b == v[0]), "a slot was written by another");
        }
        views.pop();
        assert!(a.take().is_some());
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
        let mut s = a.take().expect("slot");
        s.as_mut_slice()[(1 << 20) - 1] = 9;
        let (v, _) = s.freeze(1 << 20);
        assert_eq!(v[(1 << 20) - 1], 9);
        let meta = std::fs::metadata(format!("/proc/self/fd/{}", a.fd().as_raw_fd())).expect("fd");
        assert_eq!(meta.len(), a.mapped_bytes(), "the memfd is the arena");
    }

    #[test]
    fn bad_sizes_are_refused() {
        for (bytes, slot) in [(0, 1024), (1024, 0), (1024, 2 << 30)] {
            let config = ArenaConfig {
                name: "bad".into(),
                bytes,
                slot_bytes: slot,
                huge_pages: false,
            };
            assert!(Arena::new(1, &config).is_err(), "{bytes} bytes in slots of {slot}");
        }
    }
}
