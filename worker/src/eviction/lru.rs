//! Least recently used: evict the key whose last access is oldest.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use super::EvictionPolicy;

/// LRU over a tick counter: `O(log n)` per operation.
#[derive(Debug)]
pub struct Lru<K> {
    tick: u64,
    last_use: HashMap<K, u64>,
    by_tick: BTreeMap<u64, K>,
}

impl<K: Hash + Eq + Clone> Lru<K> {
    /// An empty policy.
    pub fn new() -> Self {
        Lru {
            tick: 0,
            last_use: HashMap::new(),
            by_tick: BTreeMap::new(),
        }
    }

    fn touch(&mut self, key: K) {
        self.tick += 1;
        if let Some(old) = self.last_use.insert(key.clone(), self.tick) {
            self.by_tick.remove(&old);
        }
        self.by_tick.insert(self.tick, key);
    }
}

impl<K: Hash + Eq + Clone> Default for Lru<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone + Send + std::fmt::Debug> EvictionPolicy<K> for Lru<K> {
    fn insert(&mut self, key: K) {
        self.touch(key);
    }

    fn access(&mut self, key: &K) {
        if self.last_use.contains_key(key) {
            self.touch(key.clone());
        }
    }

    fn remove(&mut self, key: &K) {
        if let Some(t) = self.last_use.remove(key) {
            self.by_tick.remove(&t);
        }
    }

    fn evict(&mut self) -> Option<K> {
        let (_, key) = self.by_tick.pop_first()?;
        self.last_use.remove(&key);
        Some(key)
    }

    fn len(&self) -> usize {
        self.last_use.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut p = Lru::new();
        for k in 1..=3 {
            p.insert(k);
        }
        p.access(&1);
        assert_eq!(p.evict(), Some(2));
        assert_eq!(p.evict(), Some(3));
        assert_eq!(p.evict(), Some(1));
        assert_eq!(p.evict(), None);
    }
}
