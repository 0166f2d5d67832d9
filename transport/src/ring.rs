//! Placement: a consistent-hash ring with virtual nodes.
//!
//! Each worker owns `virtual_nodes` points on a 64-bit ring; a key belongs to the first point
//! at or after its hash, and the next distinct workers clockwise are its fallbacks. Adding or
//! removing one of N workers moves about 1/N of the keys, and with enough virtual nodes every
//! worker owns close to 1/N of them (see the simulation in the tests).

use xxhash_rust::xxh3::xxh3_64;

/// The placement ring of a cluster.
#[derive(Debug, Clone)]
pub struct Ring {
    /// `(point, worker index)`, sorted by point.
    points: Vec<(u64, usize)>,
    workers: usize,
}

impl Ring {
    /// A ring of these worker ids (their order gives the indexes `owners` returns).
    pub fn new<S: AsRef<str>>(worker_ids: &[S], virtual_nodes: u32) -> Ring {
        let mut points = Vec::with_capacity(worker_ids.len() * virtual_nodes as usize);
        for (index, id) in worker_ids.iter().enumerate() {
            for v in 0..virtual_nodes {
                let mut bytes = id.as_ref().as_bytes().to_vec();
                bytes.push(0);
                bytes.extend_from_slice(&v.to_le_bytes());
                points.push((xxh3_64(&bytes), index));
            }
        }
        points.sort_unstable();
        Ring {
            points,
            workers: worker_ids.len(),
        }
    }

    /// Workers in the order a key should try them: owner first, then fallbacks.
    pub fn owners(&self, key_hash: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.points.partition_point(|(p, _)| *p < key_hash);
        let mut seen = vec![false; self.workers];
        let n = self.points.len();
        (0..n)
            .map(move |i| self.points[(start + i) % n].1)
            .filter(move |w| !std::mem::replace(&mut seen[*w], true))
    }

    /// The owner of a key.
    pub fn owner(&self, key_hash: u64) -> Option<usize> {
        self.owners(key_hash).next()
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.workers
    }

    /// Whether the ring has no worker.
    pub fn is_empty(&self) -> bool {
        self.workers == 0
    }
}

/// Placement key of a chunk of a file (its version is left out: a new version of a file lives
/// where the old one did, and the old pages age out there).
pub fn chunk_key(mount: &str, path: &str, chunk: u64) -> u64 {
    hash_parts(&[mount.as_bytes(), path.as_bytes(), &chunk.to_le_bytes()])
}

/// Placement key of a mount's coordinator: the worker that holds the mount's namespace (every
/// stat and listing, and every write, rename and delete, go there; see `docs/semantics.md`).
pub fn mount_key(mount: &str) -> u64 {
    hash_parts(&[mount.as_bytes(), b"mount"])
}

fn hash_parts(parts: &[&[u8]]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("worker-{i}")).collect()
    }

    #[test]
    fn owners_lists_every_worker_once() {
        let ring = Ring::new(&ids(5), 64);
        for k in 0..100u64 {
            let mut owners: Vec<usize> = ring.owners(k.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
            assert_eq!(owners.len(), 5);
            owners.sort_unstable();
            owners.dedup();
            assert_eq!(owners.len(), 5);
        }
    }

    /// design.md: with the default virtual nodes, the busiest of 100 workers holds at most 10%
    /// more chunks than the mean, and adding a worker moves about 1/N of the chunks.
    #[test]
    fn balance_and_movement_simulation() {
        let vnodes = 1024; // the cluster config's default
        let ring = Ring::new(&ids(100), vnodes);
        let chunks = 400_000u64;
        let mut load = vec![0u64; 100];
        let owners: Vec<usize> = (0..chunks)
            .map(|c| {
                ring.owner(chunk_key("m", &format!("file-{}", c / 16), c % 16))
                    .expect("owner")
            })
            .collect();
        for o in &owners {
            load[*o] += 1;
        }
        let mean = chunks as f64 / 100.0;
        let max = *load.iter().max().expect("workers") as f64;
        assert!(max <= mean * 1.10, "busiest worker holds {max} chunks, mean {mean}");

        let grown = Ring::new(&ids(101), vnodes);
        let moved = (0..chunks)
            .filter(|c| {
                let key = chunk_key("m", &format!("file-{}", c / 16), c % 16);
                grown.owner(key) != Some(owners[*c as usize])
            })
            .count() as f64;
        let ideal = chunks as f64 / 101.0;
        assert!(
            moved <= ideal * 1.15,
            "adding a worker moved {moved} chunks, ideal {ideal}"
        );
        assert!(moved >= ideal * 0.85, "suspiciously few moves: {moved}");
    }
}
