//! Metadata cache: stat results and listing pages, trusted for a TTL.
//!
//! The TTL bounds how long a changed object can go unnoticed: after it, the next stat asks the
//! under-store, sees the new version tag, and readers move to pages keyed by that version. Misses
//! (`NotFound`) are cached too, so a storm of lookups of a missing file costs one request per TTL.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use hoard_transport::wire::{FileMeta, ListReply};
use parking_lot::Mutex;

/// What a listing was asked with: the cache key of a listing page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListKey {
    /// Mount name.
    pub mount: String,
    /// Prefix.
    pub prefix: String,
    /// Delimiter.
    pub delimiter: Option<String>,
    /// Continuation token.
    pub continuation: Option<String>,
    /// Page size.
    pub max_keys: u32,
    /// Markers listed as files.
    pub markers: bool,
}

/// A cached stat result: the file, or its absence.
pub type StatEntry = Option<FileMeta>;

#[derive(Debug)]
struct TtlMap<K, V> {
    entries: HashMap<K, (Instant, V)>,
    max_entries: usize,
}

impl<K: Hash + Eq, V: Clone> TtlMap<K, V> {
    fn get(&self, key: &K, ttl: Duration) -> Option<V> {
        let (at, v) = self.entries.get(key)?;
        (at.elapsed() < ttl).then(|| v.clone())
    }

    fn insert(&mut self, key: K, value: V, ttl: Duration) {
        if self.entries.len() >= self.max_entries {
            self.entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if self.entries.len() >= self.max_entries {
                // Still full of fresh entries: start over rather than grow without bound.
                self.entries.clear();
            }
        }
        self.entries.insert(key, (Instant::now(), value));
    }

    fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }
}

/// Cached stats and listings of all mounts.
#[derive(Debug)]
pub struct MetadataCache {
    ttl: Duration,
    stats: Mutex<TtlMap<(String, String), StatEntry>>,
    lists: Mutex<TtlMap<ListKey, ListReply>>,
}

impl MetadataCache {
    /// A cache whose entries live `ttl`, holding about `max_entries` of each kind.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        let max_entries = max_entries.max(1);
        MetadataCache {
            ttl,
            stats: Mutex::new(TtlMap {
                entries: HashMap::new(),
                max_entries,
            }),
            lists: Mutex::new(TtlMap {
                entries: HashMap::new(),
                max_entries,
            }),
        }
    }

    /// A fresh cached stat of `mount`/`path`: `Some(None)` is a cached absence.
    pub fn stat(&self, mount: &str, path: &str) -> Option<StatEntry> {
        if self.ttl.is_zero() {
            return None;
        }
        self.stats.lock().get(&(mount.to_owned(), path.to_owned()), self.ttl)
    }

    /// Remember a stat result.
    pub fn put_stat(&self, mount: &str, path: &str, entry: StatEntry) {
        self.stats
            .lock()
            .insert((mount.to_owned(), path.to_owned()), entry, self.ttl);
    }

    /// Forget a stat result (the caller learnt it is stale).
    pub fn forget_stat(&self, mount: &str, path: &str) {
        self.stats.lock().remove(&(mount.to_owned(), path.to_owned()));
    }

    /// Forget every listing of a mount (its namespace changed).
    pub fn forget_lists(&self, mount: &str) {
        self.lists.lock().entries.retain(|k, _| k.mount != mount);
    }

    /// A fresh cached listing page.
    pub fn list(&self, key: &ListKey) -> Option<ListReply> {
        if self.ttl.is_zero() {
            return None;
        }
        self.lists.lock().get(key, self.ttl)
    }

    /// Remember a listing page.
    pub fn put_list(&self, key: ListKey, reply: ListReply) {
        self.lists.lock().insert(key, reply, self.ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(v: &str) -> FileMeta {
        FileMeta {
            path: "p".into(),
            size: 1,
            version: v.into(),
            mtime_ms: 0,
            homed: false,
            metadata: None,
        }
    }

    #[test]
    fn entries_expire_after_ttl() {
        let cache = MetadataCache::new(Duration::from_millis(30), 10);
        cache.put_stat("m", "p", Some(meta("v1")));
        assert_eq!(cache.stat("m", "p"), Some(Some(meta("v1"))));
        cache.put_stat("m", "gone", None);
        assert_eq!(cache.stat("m", "gone"), Some(None));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.stat("m", "p"), None);
    }

    #[test]
    fn stays_bounded() {
        let cache = MetadataCache::new(Duration::from_secs(60), 8);
        for i in 0..100 {
            cache.put_stat("m", &format!("p{i}"), None);
        }
        assert!(cache.stats.lock().entries.len() <= 8);
        assert_eq!(cache.stat("m", "p99"), Some(None));
    }
}
