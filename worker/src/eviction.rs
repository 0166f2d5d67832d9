//! Eviction policies: which cached page to drop when the store is full.
//!
//! A policy only orders keys; the page store owns the pages and the byte accounting. One file per
//! policy: [`S3Fifo`] (the default) and [`Lru`].

mod lru;
mod s3fifo;

use std::hash::Hash;

use hoard_transport::cluster::EvictionKind;

pub use lru::Lru;
pub use s3fifo::S3Fifo;

/// Orders cached keys for eviction.
pub trait EvictionPolicy<K>: Send + std::fmt::Debug {
    /// A new key was admitted to the store. It must not already be tracked.
    fn insert(&mut self, key: K);
    /// A tracked key was read.
    fn access(&mut self, key: &K);
    /// A tracked key was dropped by the store for another reason (invalidation).
    fn remove(&mut self, key: &K);
    /// Choose a victim, stop tracking it and return it; `None` when nothing is tracked.
    fn evict(&mut self) -> Option<K>;
    /// Number of tracked keys.
    fn len(&self) -> usize;
    /// Whether no key is tracked.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The policy a config names.
pub fn from_kind<K: Hash + Eq + Clone + Send + std::fmt::Debug + 'static>(
    kind: EvictionKind,
) -> Box<dyn EvictionPolicy<K>> {
    match kind {
        EvictionKind::S3fifo => Box::new(S3Fifo::new()),
        EvictionKind::Lru => Box::new(Lru::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Properties every policy must have: evicts each key once, never an untracked key.
    fn check_policy(mut p: Box<dyn EvictionPolicy<u32>>) {
        for k in 0..100 {
            p.insert(k);
        }
        p.remove(&7);
        p.access(&3);
        assert_eq!(p.len(), 99);
        let mut seen = std::collections::HashSet::new();
        while let Some(k) = p.evict() {
            assert!(k < 100 && k != 7, "evicted untracked key {k}");
            assert!(seen.insert(k), "evicted {k} twice");
        }
        assert_eq!(seen.len(), 99);
        assert!(p.is_empty());
        // Re-insert after removal works.
        p.insert(7);
        assert_eq!(p.evict(), Some(7));
    }

    #[test]
    fn both_policies_are_sound() {
        check_policy(from_kind(EvictionKind::S3fifo));
        check_policy(from_kind(EvictionKind::Lru));
    }
}
