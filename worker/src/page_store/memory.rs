//! The memory tier: pages in slots of a huge-page arena ([`Arena`]), bounded by the arena's
//! size, evicted by an [`EvictionPolicy`].
//!
//! A page's bytes are copied into a slot of the arena when it is cached, and served as [`Bytes`]
//! that view the slot: an evicted page's slot is reused only once the last reply that still
//! sends it has let go. Slots are buddy blocks (4 KiB up to the page size), so the tail page of a
//! file or a small file takes a small block. To cache a page the store evicts, in policy order,
//! until a block of its size is free; when nothing is left to evict (every slot is still being
//! sent, or free space is cut too small) the page is served but not cached.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hoard_transport::region::{Arena, ArenaConfig, SlotMut};
use parking_lot::Mutex;

use super::{NvmeTier, Page, PageKey};
use crate::eviction::EvictionPolicy;
use crate::metrics;

/// Smallest slot of the arena.
pub const MIN_SLOT_BYTES: u64 = 4096;

/// Counters of a page store.
#[derive(Debug, Default)]
pub struct PageStoreStats {
    /// Lookups that found the page.
    pub hits: AtomicU64,
    /// Lookups that did not.
    pub misses: AtomicU64,
    /// Pages evicted to make room.
    pub evictions: AtomicU64,
    /// Pages not cached: no slot could be freed for them.
    pub not_cached: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    pages: HashMap<PageKey, Page>,
    policy: Box<dyn EvictionPolicy<PageKey>>,
    /// Bytes of page data cached (slots hold at least this much).
    used_bytes: u64,
}

/// The memory page store.
#[derive(Debug)]
pub struct MemoryPageStore {
    inner: Mutex<Inner>,
    arena: Arc<Arena>,
    stats: PageStoreStats,
    hits_counter: ::metrics::Counter,
    misses_counter: ::metrics::Counter,
    tier_hits: ::metrics::Counter,
    tier_bytes_read: ::metrics::Counter,
    /// Where evicted pages go, and misses are looked for.
    nvme: Option<Arc<NvmeTier>>,
}

impl MemoryPageStore {
    /// A store in a new arena of `capacity_bytes` (huge pages if `huge_pages` and reserved) for
    /// pages of at most `page_size` bytes.
    ///
    /// # Errors
    /// A size the arena refuses (see [`Arena::new`]): `page_size` not a power of two of at least
    /// 4 KiB, a capacity under one page, or a mapping the kernel refuses.
    pub fn new(
        capacity_bytes: u64,
        page_size: u64,
        huge_pages: bool,
        policy: Box<dyn EvictionPolicy<PageKey>>,
    ) -> std::io::Result<Self> {
        let config = ArenaConfig {
            name: "hoard-memory-tier".into(),
            bytes: capacity_bytes,
            min_block: MIN_SLOT_BYTES.min(page_size),
            max_block: page_size,
            huge_pages,
        };
        Ok(Self::in_arena(Arena::new(0, &config)?, policy))
    }

    /// A store in `arena`.
    pub fn in_arena(arena: Arc<Arena>, policy: Box<dyn EvictionPolicy<PageKey>>) -> Self {
        MemoryPageStore {
            inner: Mutex::new(Inner {
                pages: HashMap::new(),
                policy,
                used_bytes: 0,
            }),
            arena,
            stats: PageStoreStats::default(),
            hits_counter: ::metrics::counter!(metrics::PAGE_HITS),
            misses_counter: ::metrics::counter!(metrics::PAGE_MISSES),
            tier_hits: ::metrics::counter!(metrics::TIER_HITS, "tier" => "memory"),
            tier_bytes_read: ::metrics::counter!(metrics::TIER_BYTES_READ, "tier" => "memory"),
            nvme: None,
        }
    }

    /// Send evicted pages to `nvme`, and look for misses there.
    pub fn with_nvme(mut self, nvme: Arc<NvmeTier>) -> Self {
        self.nvme = Some(nvme);
        self
    }

    /// The NVMe tier behind this store, if any.
    pub fn nvme(&self) -> Option<&Arc<NvmeTier>> {
        self.nvme.as_ref()
    }

    /// The arena the pages live in.
    pub fn arena(&self) -> &Arc<Arena> {
        &self.arena
    }

    /// The cached page, counting a hit or a miss: from memory, else from the NVMe tier (then
    /// copied back into memory: promoted).
    pub fn get(&self, key: &PageKey) -> Option<Page> {
        let found = {
            let mut inner = self.inner.lock();
            let page = inner.pages.get(key).cloned();
            if page.is_some() {
                inner.policy.access(key);
            }
            page
        };
        if let Some(page) = &found {
            self.tier_hits.increment(1);
            self.tier_bytes_read.increment(page.data.len() as u64);
        }
        let found = found.or_else(|| self.promote(key));
        let (counter, exported) = match found {
            Some(_) => (&self.stats.hits, &self.hits_counter),
            None => (&self.stats.misses, &self.misses_counter),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        exported.increment(1);
        found
    }

    /// A page of the NVMe tier, copied back into memory (served from the copy read when no
    /// slot can be had).
    fn promote(&self, key: &PageKey) -> Option<Page> {
        let bytes = self.nvme.as_ref()?.read(key)?;
        ::metrics::counter!(metrics::NVME_PROMOTIONS).increment(1);
        Some(
            self.cache(*key, &bytes)
                .unwrap_or_else(|| Page::new(bytes::Bytes::from(bytes))),
        )
    }

    /// The cached page, without counting a hit or touching its eviction order.
    pub fn peek(&self, key: &PageKey) -> Option<Page> {
        self.inner.lock().pages.get(key).cloned()
    }

    /// Drop a page (it failed verification, or its file is gone), from both tiers.
    pub fn remove(&self, key: &PageKey) -> Option<Page> {
        if let Some(nvme) = &self.nvme {
            nvme.remove(key);
        }
        let mut inner = self.inner.lock();
        let page = inner.pages.remove(key)?;
        inner.used_bytes -= page.data.len() as u64;
        inner.policy.remove(key);
        publish_gauges(&inner);
        Some(page)
    }

    /// Whether the page is cached (in either tier), without counting or touching it.
    pub fn contains(&self, key: &PageKey) -> bool {
        self.inner.lock().pages.contains_key(key) || self.nvme.as_ref().is_some_and(|n| n.contains(key))
    }

    /// Cache a copy of a page in the arena, evicting others until a slot is free. A page larger
    /// than a slot, or one no eviction makes room for, is not cached. A page replacing one of
    /// the same key enters the eviction order as a new page.
    pub fn insert(&self, key: PageKey, page: Page) {
        self.put(key, &page.data, page.crc32c);
    }

    /// Cache a page of these bytes (checksummed now), copied straight into a slot, and return it
    /// as cached (its bytes view the slot); `None` when it could not be cached (as for
    /// [`MemoryPageStore::insert`]).
    pub fn cache(&self, key: PageKey, data: &[u8]) -> Option<Page> {
        self.put(key, data, crc32c::crc32c(data))
    }

    fn put(&self, key: PageKey, bytes: &[u8], crc32c: u32) -> Option<Page> {
        let len = bytes.len();
        let Some(mut slot) = self.take_slot(&key, len as u64) else {
            self.stats.not_cached.fetch_add(1, Ordering::Relaxed);
            ::metrics::counter!(metrics::PAGES_NOT_CACHED).increment(1);
            tracing::debug!(len, "page not cached: no slot could be freed for it");
            return None;
        };
        // The copy runs outside the store's lock: the slot is this call's alone.
        slot.as_mut_slice()[..len].copy_from_slice(bytes);
        let (data, _generation) = slot.freeze(len);
        let page = Page { data, crc32c };
        let cached = page.clone();
        let mut inner = self.inner.lock();
        // Another insert of the same key may have come in meanwhile: the later one stays.
        if let Some(old) = inner.pages.insert(key, page) {
            inner.used_bytes -= old.data.len() as u64;
        } else {
            inner.policy.insert(key);
        }
        inner.used_bytes += len as u64;
        debug_assert_eq!(
            inner.pages.len(),
            inner.policy.len(),
            "policy tracks exactly the cached pages"
        );
        publish_gauges(&inner);
        Some(cached)
    }

    /// A free slot of `len` bytes for `key`, dropping the page `key` had and evicting others
    /// until one is; `None` when `len` exceeds a slot or nothing more can be evicted. Evicted
    /// pages go to the NVMe tier, written outside the store's lock (their slots come free once
    /// they are written there and let go).
    fn take_slot(&self, key: &PageKey, len: u64) -> Option<SlotMut> {
        self.arena.block_bytes(len)?;
        let mut evicted = 0u64;
        let mut inner = self.inner.lock();
        // The page it replaces goes first (its slot may be the one to reuse).
        if let Some(old) = inner.pages.remove(key) {
            inner.used_bytes -= old.data.len() as u64;
            inner.policy.remove(key);
        }
        let slot = loop {
            if let Some(slot) = self.arena.alloc(len) {
                break Some(slot);
            }
            let Some(victim) = inner.policy.evict() else {
                break None;
            };
            let Some(old) = inner.pages.remove(&victim) else {
                continue;
            };
            inner.used_bytes -= old.data.len() as u64;
            evicted += 1;
            if let Some(nvme) = &self.nvme {
                drop(inner);
                nvme.demote(victim, &old);
                drop(old);
                inner = self.inner.lock();
            }
        };
        publish_gauges(&inner);
        drop(inner);
        if evicted > 0 {
            self.stats.evictions.fetch_add(evicted, Ordering::Relaxed);
            ::metrics::counter!(metrics::EVICTIONS).increment(evicted);
        }
        slot
    }

    /// Bytes of cached page data.
    pub fn used_bytes(&self) -> u64 {
        self.inner.lock().used_bytes
    }

    /// Number of cached pages.
    pub fn len(&self) -> usize {
        self.inner.lock().pages.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The byte capacity: the arena's slots.
    pub fn capacity_bytes(&self) -> u64 {
        self.arena.capacity_bytes()
    }

    /// Hit, miss and eviction counters.
    pub fn stats(&self) -> &PageStoreStats {
        &self.stats
    }
}

fn publish_gauges(inner: &Inner) {
    ::metrics::gauge!(metrics::CACHED_BYTES).set(inner.used_bytes as f64);
    ::metrics::gauge!(metrics::TIER_USED_BYTES, "tier" => "memory").set(inner.used_bytes as f64);
    ::metrics::gauge!(metrics::CACHED_PAGES).set(inner.pages.len() as f64);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hoard_transport::cluster::EvictionKind;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::eviction;
    use crate::page_store::FileId;

    fn key(i: u64) -> PageKey {
        PageKey {
            file: FileId(1),
            index: i,
        }
    }

    fn page(i: u64, len: usize) -> Page {
        Page::new(Bytes::from(vec![i as u8; len]))
    }

    fn store(capacity: u64, page_size: u64, kind: EvictionKind) -> MemoryPageStore {
        MemoryPageStore::new(capacity, page_size, false, eviction::from_kind(kind)).expect("memory tier")
    }

    /// Reference model: random ops against a BTreeMap; the store may forget pages (eviction)
    /// but never returns wrong bytes and never exceeds its capacity, with pages of every size
    /// from 1 byte to a whole slot sharing the arena.
    #[test]
    fn never_returns_wrong_bytes_or_overflows() {
        for kind in [EvictionKind::S3fifo, EvictionKind::Lru] {
            let store = store(256 * 1024, 16 * 1024, kind);
            let mut model = std::collections::BTreeMap::new();
            let mut held = Vec::new();
            let mut rng = rand::rngs::StdRng::seed_from_u64(42);
            for _ in 0..20_000 {
                let i = rng.random_range(0..200u64);
                if rng.random_bool(0.4) {
                    let len = rng.random_range(1..=16 * 1024);
                    let p = page(i, len);
                    model.insert(i, p.clone());
                    store.insert(key(i), p);
                } else if let Some(got) = store.get(&key(i)) {
                    assert_eq!(Some(&got), model.get(&i), "wrong page for {i}");
                    assert!(got.verify());
                    // Some readers hold on to a page for a while (a reply being sent).
                    if rng.random_bool(0.05) {
                        held.push(got);
                    }
                }
                if held.len() > 8 {
                    let p = held.swap_remove(0);
                    assert!(p.verify(), "a held page changed under its reader");
                }
                assert!(store.used_bytes() <= store.capacity_bytes());
            }
            assert!(held.iter().all(Page::verify));
            assert!(store.stats().evictions.load(Ordering::Relaxed) > 0);
            assert!(store.stats().hits.load(Ordering::Relaxed) > 0);
        }
    }

    #[test]
    fn a_page_larger_than_a_slot_is_not_cached_and_small_pages_share_the_arena() {
        let store = store(64 * 1024, 16 * 1024, EvictionKind::Lru);
        store.insert(key(1), page(1, 16 * 1024 + 1));
        assert!(store.is_empty());
        for i in 0..16 {
            store.insert(key(i), page(i, 4096));
        }
        assert_eq!(
            (store.len(), store.used_bytes()),
            (16, 64 * 1024),
            "16 pages of 4 KiB in 64 KiB"
        );
        assert_eq!(store.stats().evictions.load(Ordering::Relaxed), 0);
        store.insert(key(100), page(100, 16 * 1024));
        assert!(store.contains(&key(100)), "evicted until a 16 KiB block merged");
        assert!(store.used_bytes() <= 64 * 1024);
    }

    #[test]
    fn a_page_being_sent_keeps_its_slot_after_eviction() {
        let store = store(32 * 1024, 16 * 1024, EvictionKind::Lru);
        store.insert(key(1), page(1, 16 * 1024));
        store.insert(key(2), page(2, 16 * 1024));
        let sending = store.get(&key(1)).expect("cached");
        let sending2 = store.get(&key(2)).expect("cached");
        // Both slots are viewed: the next page evicts both and still finds no slot.
        store.insert(key(3), page(3, 16 * 1024));
        assert!(!store.contains(&key(3)), "no slot while both are being sent");
        assert_eq!(store.stats().not_cached.load(Ordering::Relaxed), 1);
        assert_eq!(sending, page(1, 16 * 1024), "the evicted page's bytes are intact");
        drop(sending);
        store.insert(key(4), page(4, 16 * 1024));
        assert_eq!(
            store.get(&key(4)),
            Some(page(4, 16 * 1024)),
            "its slot is reused once let go"
        );
        assert_eq!(sending2, page(2, 16 * 1024));
    }
}
