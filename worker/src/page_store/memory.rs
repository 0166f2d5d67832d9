//! Pages in process memory, bounded by a byte capacity, evicted by an [`EvictionPolicy`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::{Page, PageKey};
use crate::eviction::EvictionPolicy;
use crate::metrics;

/// Counters of a page store.
#[derive(Debug, Default)]
pub struct PageStoreStats {
    /// Lookups that found the page.
    pub hits: AtomicU64,
    /// Lookups that did not.
    pub misses: AtomicU64,
    /// Pages evicted to make room.
    pub evictions: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    pages: HashMap<PageKey, Page>,
    policy: Box<dyn EvictionPolicy<PageKey>>,
    used_bytes: u64,
}

/// A memory page store.
#[derive(Debug)]
pub struct MemoryPageStore {
    inner: Mutex<Inner>,
    capacity_bytes: u64,
    stats: PageStoreStats,
    hits_counter: ::metrics::Counter,
    misses_counter: ::metrics::Counter,
}

impl MemoryPageStore {
    /// A store holding at most `capacity_bytes` of page data.
    pub fn new(capacity_bytes: u64, policy: Box<dyn EvictionPolicy<PageKey>>) -> Self {
        assert!(capacity_bytes > 0, "a page store needs capacity");
        MemoryPageStore {
            inner: Mutex::new(Inner {
                pages: HashMap::new(),
                policy,
                used_bytes: 0,
            }),
            capacity_bytes,
            stats: PageStoreStats::default(),
            hits_counter: ::metrics::counter!(metrics::PAGE_HITS),
            misses_counter: ::metrics::counter!(metrics::PAGE_MISSES),
        }
    }

    /// The cached page, counting a hit or a miss.
    pub fn get(&self, key: &PageKey) -> Option<Page> {
        let found = {
            let mut inner = self.inner.lock();
            let page = inner.pages.get(key).cloned();
            if page.is_some() {
                inner.policy.access(key);
            }
            page
        };
        let (counter, exported) = match found {
            Some(_) => (&self.stats.hits, &self.hits_counter),
            None => (&self.stats.misses, &self.misses_counter),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        exported.increment(1);
        found
    }

    /// The cached page, without counting a hit or touching its eviction order.
    pub fn peek(&self, key: &PageKey) -> Option<Page> {
        self.inner.lock().pages.get(key).cloned()
    }

    /// Drop a page (it failed verification, or its file is gone).
    pub fn remove(&self, key: &PageKey) -> Option<Page> {
        let mut inner = self.inner.lock();
        let page = inner.pages.remove(key)?;
        inner.used_bytes -= page.data.len() as u64;
        inner.policy.remove(key);
        publish_gauges(&inner);
        Some(page)
    }

    /// Whether the page is cached, without counting or touching it.
    pub fn contains(&self, key: &PageKey) -> bool {
        self.inner.lock().pages.contains_key(key)
    }

    /// Cache a page, evicting others until it fits. A page larger than the whole capacity is
    /// not cached. Replacing an existing page keeps its place in the eviction order.
    pub fn insert(&self, key: PageKey, page: Page) {
        let size = page.data.len() as u64;
        if size > self.capacity_bytes {
            return;
        }
        let mut evicted = 0u64;
        {
            let mut inner = self.inner.lock();
            if let Some(old) = inner.pages.remove(&key) {
                inner.used_bytes -= old.data.len() as u64;
                inner.policy.remove(&key);
            }
            while inner.used_bytes + size > self.capacity_bytes {
                let Some(victim) = inner.policy.evict() else { break };
                if let Some(old) = inner.pages.remove(&victim) {
                    inner.used_bytes -= old.data.len() as u64;
                    evicted += 1;
                }
            }
            debug_assert!(
                inner.used_bytes + size <= self.capacity_bytes,
                "eviction must make room"
            );
            inner.used_bytes += size;
            inner.pages.insert(key, page);
            inner.policy.insert(key);
            debug_assert_eq!(
                inner.pages.len(),
                inner.policy.len(),
                "policy tracks exactly the cached pages"
            );
            publish_gauges(&inner);
        }
        if evicted > 0 {
            self.stats.evictions.fetch_add(evicted, Ordering::Relaxed);
            ::metrics::counter!(metrics::EVICTIONS).increment(evicted);
        }
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

    /// The byte capacity.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// Hit, miss and eviction counters.
    pub fn stats(&self) -> &PageStoreStats {
        &self.stats
    }
}

fn publish_gauges(inner: &Inner) {
    ::metrics::gauge!(metrics::CACHED_BYTES).set(inner.used_bytes as f64);
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

    /// Reference model: random ops against a BTreeMap; the store may forget pages (eviction)
    /// but never returns wrong bytes and never exceeds its capacity.
    #[test]
    fn never_returns_wrong_bytes_or_overflows() {
        for kind in [EvictionKind::S3fifo, EvictionKind::Lru] {
            let store = MemoryPageStore::new(64 * 1024, eviction::from_kind(kind));
            let mut model = std::collections::BTreeMap::new();
            let mut rng = rand::rngs::StdRng::seed_from_u64(42);
            for _ in 0..20_000 {
                let i = rng.random_range(0..200u64);
                if rng.random_bool(0.4) {
                    let len = rng.random_range(1..8192);
                    let p = page(i, len);
                    model.insert(i, p.clone());
                    store.insert(key(i), p);
                } else if let Some(got) = store.get(&key(i)) {
                    assert_eq!(Some(&got), model.get(&i), "wrong page for {i}");
                    assert!(got.verify());
                }
                assert!(store.used_bytes() <= store.capacity_bytes());
            }
            assert!(store.stats().evictions.load(Ordering::Relaxed) > 0);
            assert!(store.stats().hits.load(Ordering::Relaxed) > 0);
        }
    }

    #[test]
    fn oversized_page_is_not_cached() {
        let store = MemoryPageStore::new(100, eviction::from_kind(EvictionKind::Lru));
        store.insert(key(1), page(1, 101));
        assert!(store.is_empty());
        store.insert(key(2), page(2, 100));
        assert_eq!(store.used_bytes(), 100);
    }
}
