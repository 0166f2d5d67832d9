//! The page-validity argument of `docs/design.md` ("Registered regions and page validity"),
//! tested: readers copy pages by location out of a second, read-only mapping of an arena (as a
//! local client does) while the owner gives slots back and reuses them as fast as it can. Every
//! copy the generation check accepts must be exactly the page the location named; the others
//! are counted as stale and asked again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use hoard_transport::region::{Arena, ArenaConfig, Location, RegionReader};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};

const MIN: u64 = 4096;
/// Pages published at once: readers pick among them, the owner replaces one after another.
const HOT: usize = 12;
/// Copies the readers must make in all (`HOARD_STRESS_READS` lowers it for slow runs, such as
/// under valgrind: `scripts/valgrind-regions.sh`).
const READS: u64 = 5_000_000;

fn reads() -> u64 {
    std::env::var("HOARD_STRESS_READS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(READS)
}

/// A hot page: where it is, and the seed of its content.
type Published = Option<(Location, u64)>;

/// The content of the page with `seed`: word `i` is `seed ^ i`.
fn fill(buf: &mut [u8], seed: u64) {
    for (i, word) in buf.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&(seed ^ i as u64).to_le_bytes());
    }
}

fn matches(buf: &[u8], seed: u64) -> bool {
    buf.chunks_exact(8)
        .enumerate()
        .all(|(i, w)| u64::from_le_bytes(w.try_into().expect("8 bytes")) == seed ^ i as u64)
}

#[test]
fn copies_by_location_are_never_torn_or_stale_while_slots_are_reused() {
    // 16 smallest blocks for 12 hot pages of up to 4 blocks: the owner often has to wait for
    // merges, and every slot is reused within microseconds of being given back.
    let config = ArenaConfig {
        name: "hoard-stress".into(),
        bytes: 16 * MIN,
        min_block: MIN,
        max_block: 4 * MIN,
        huge_pages: false,
    };
    let reads = reads();
    let arena = Arena::new(3, &config).expect("arena");
    let reader = Arc::new(RegionReader::map(3, arena.fd(), arena.generations_fd(), MIN).expect("map read-only"));
    let published: Arc<Mutex<Vec<Published>>> = Arc::new(Mutex::new(vec![None; HOT]));
    let stop = Arc::new(AtomicBool::new(false));
    let (good, stale, wrong) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let (torn_caught, torn_bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));

    let owner = {
        let (arena, published, stop) = (arena.clone(), published.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(1);
            let mut views: Vec<Option<Bytes>> = vec![None; HOT];
            let mut seed = 0u64;
            let mut reuses = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let i = (seed as usize) % HOT;
                seed += 1;
                // Give the old page's slot back at once: its readers may be mid-copy.
                views[i] = None;
                let len = rng.random_range(1..=(4 * MIN / 8)) * 8;
                let Some(mut slot) = arena.alloc(len) else {
                    continue; // every large enough block is held; the next round frees another
                };
                let l = usize::try_from(len).expect("len");
                fill(&mut slot.as_mut_slice()[..l], seed);
                let (view, _) = slot.freeze(l);
                let at = arena.locate(&view).expect("a frozen slot of this arena");
                published.lock()[i] = Some((at, seed));
                views[i] = Some(view);
                reuses += 1;
            }
            reuses
        })
    };
    let readers: Vec<_> = (0..2u64)
        .map(|r| {
            let (reader, published) = (reader.clone(), published.clone());
            let (good, stale, wrong) = (good.clone(), stale.clone(), wrong.clone());
            let (torn_caught, torn_bytes) = (torn_caught.clone(), torn_bytes.clone());
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(100 + r);
                let mut buf = vec![0u8; (4 * MIN) as usize];
                while good.load(Ordering::Relaxed) + stale.load(Ordering::Relaxed) < reads {
                    let Some((at, seed)) = published.lock()[rng.random_range(0..HOT)] else {
                        continue;
                    };
                    let dst = &mut buf[..at.len as usize];
                    match reader.copy_into(&at, dst) {
                        Ok(()) if matches(dst, seed) => good.fetch_add(1, Ordering::Relaxed),
                        Ok(()) => wrong.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            if e.during_copy {
                                // Caught by the second look: the copy is thrown away. Count the
                                // ones whose bytes really were not the page.
                                torn_caught.fetch_add(1, Ordering::Relaxed);
                                if !matches(dst, seed) {
                                    torn_bytes.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            stale.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    let started = Instant::now();
    for r in readers {
        r.join().expect("reader");
    }
    stop.store(true, Ordering::Relaxed);
    let reuses = owner.join().expect("owner");
    let (good, stale, wrong) = (
        good.load(Ordering::Relaxed),
        stale.load(Ordering::Relaxed),
        wrong.load(Ordering::Relaxed),
    );
    let (torn_caught, torn_bytes) = (torn_caught.load(Ordering::Relaxed), torn_bytes.load(Ordering::Relaxed));
    eprintln!(
        "{good} good copies, {stale} stale (asked again; {torn_caught} of them changed during the copy, \
         {torn_bytes} with wrong bytes), {wrong} wrong, {reuses} slot reuses in {:?}",
        started.elapsed()
    );
    assert_eq!(wrong, 0, "a copy the generation check accepted was not the page");
    assert!(good + stale >= reads);
    assert!(good > reads / 20, "too few copies succeeded to mean anything: {good}");
    assert!(stale > 0, "no copy raced a reuse: the test did not test the check");
    assert!(reuses > reads / 500, "the owner reused only {reuses} slots");
}
