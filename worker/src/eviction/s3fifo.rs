//! S3-FIFO (Yang et al., SOSP 2023): a small FIFO filters one-hit wonders, a main FIFO with
//! reinsertion keeps the working set, and a ghost queue remembers recently evicted keys so that
//! their return goes straight to the main queue. Scan-resistant, and cheaper than LRU on hits
//! (a hit only bumps a 2-bit counter).
//!
//! Queues hold `(key, seq)`; an entry whose seq no longer matches the key's live entry is stale
//! (the key was removed, or moved) and skipped when it reaches the tail.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use super::EvictionPolicy;

const MAX_FREQ: u8 = 3;
/// Share of tracked keys the small queue may hold before it is evicted from first, in percent.
const SMALL_PERCENT: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Small,
    Main,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    freq: u8,
    queue: Queue,
    seq: u64,
}

/// The S3-FIFO policy.
#[derive(Debug)]
pub struct S3Fifo<K> {
    seq: u64,
    live: HashMap<K, Entry>,
    small: VecDeque<(K, u64)>,
    main: VecDeque<(K, u64)>,
    small_len: usize,
    ghost: HashMap<K, u64>,
    ghost_fifo: VecDeque<(K, u64)>,
}

impl<K: Hash + Eq + Clone> S3Fifo<K> {
    /// An empty policy.
    pub fn new() -> Self {
        S3Fifo {
            seq: 0,
            live: HashMap::new(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_len: 0,
            ghost: HashMap::new(),
            ghost_fifo: VecDeque::new(),
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn push(&mut self, key: K, queue: Queue, freq: u8) {
        let seq = self.next_seq();
        self.live.insert(key.clone(), Entry { freq, queue, seq });
        match queue {
            Queue::Small => {
                self.small.push_back((key, seq));
                self.small_len += 1;
            }
            Queue::Main => self.main.push_back((key, seq)),
        }
    }

    /// Pop the oldest live entry of a queue.
    fn pop_live(&mut self, queue: Queue) -> Option<(K, Entry)> {
        loop {
            let (key, seq) = match queue {
                Queue::Small => self.small.pop_front()?,
                Queue::Main => self.main.pop_front()?,
            };
            match self.live.get(&key) {
                Some(e) if e.seq == seq && e.queue == queue => {
                    let e = *e;
                    if queue == Queue::Small {
                        self.small_len -= 1;
                    }
                    return Some((key, e));
                }
                _ => continue,
            }
        }
    }

    fn remember_ghost(&mut self, key: K) {
        let seq = self.next_seq();
        self.ghost.insert(key.clone(), seq);
        self.ghost_fifo.push_back((key, seq));
        // The ghost queue remembers about as many keys as the cache holds.
        let limit = self.live.len().max(16);
        while self.ghost.len() > limit {
            let Some((k, s)) = self.ghost_fifo.pop_front() else {
                break;
            };
            if self.ghost.get(&k) == Some(&s) {
                self.ghost.remove(&k);
            }
        }
        // Stale ghost entries (keys re-admitted) are trimmed lazily as well.
        while self.ghost_fifo.len() > 2 * limit {
            let Some((k, s)) = self.ghost_fifo.pop_front() else {
                break;
            };
            if self.ghost.get(&k) == Some(&s) {
                self.ghost.remove(&k);
            }
        }
    }

    fn evict_small(&mut self) -> Option<K> {
        while let Some((key, e)) = self.pop_live(Queue::Small) {
            if e.freq > 1 {
                self.push(key, Queue::Main, 0);
            } else {
                self.live.remove(&key);
                self.remember_ghost(key.clone());
                return Some(key);
            }
        }
        None
    }

    fn evict_main(&mut self) -> Option<K> {
        while let Some((key, e)) = self.pop_live(Queue::Main) {
            if e.freq > 0 {
                self.push(key, Queue::Main, e.freq - 1);
            } else {
                self.live.remove(&key);
                return Some(key);
            }
        }
        None
    }
}

impl<K: Hash + Eq + Clone> Default for S3Fifo<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone + Send + std::fmt::Debug> EvictionPolicy<K> for S3Fifo<K> {
    fn insert(&mut self, key: K) {
        debug_assert!(!self.live.contains_key(&key), "insert of a tracked key");
        let queue = if self.ghost.remove(&key).is_some() {
            Queue::Main
        } else {
            Queue::Small
        };
        self.push(key, queue, 0);
    }

    fn access(&mut self, key: &K) {
        if let Some(e) = self.live.get_mut(key) {
            e.freq = (e.freq + 1).min(MAX_FREQ);
        }
    }

    fn remove(&mut self, key: &K) {
        if let Some(e) = self.live.remove(key)
            && e.queue == Queue::Small
        {
            self.small_len -= 1;
        }
    }

    fn evict(&mut self) -> Option<K> {
        let small_full = self.small_len * 100 >= self.live.len() * SMALL_PERCENT;
        if (small_full || self.main.is_empty())
            && let Some(k) = self.evict_small()
        {
            return Some(k);
        }
        self.evict_main().or_else(|| self.evict_small())
    }

    fn len(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hit_wonders_leave_before_the_working_set() {
        let mut p = S3Fifo::new();
        // A hot working set, read several times.
        for k in 0..10 {
            p.insert(k);
        }
        for _ in 0..3 {
            for k in 0..10 {
                p.access(&k);
            }
        }
        // A scan of cold keys follows; keep the cache at 20 keys.
        let mut evicted = Vec::new();
        for k in 100..200 {
            p.insert(k);
            while p.len() > 20 {
                evicted.push(p.evict().expect("a victim"));
            }
        }
        assert!(
            evicted.iter().all(|k| *k >= 100),
            "the scan evicted hot keys: {evicted:?}"
        );
        assert_eq!(p.len(), 20);
    }

    #[test]
    fn ghost_hit_goes_to_main() {
        let mut p = S3Fifo::new();
        for k in 0..20 {
            p.insert(k);
        }
        let first = p.evict().expect("victim");
        assert_eq!(first, 0, "small queue is FIFO");
        p.insert(first);
        assert_eq!(p.live.get(&first).map(|e| e.queue), Some(Queue::Main));
    }
}
