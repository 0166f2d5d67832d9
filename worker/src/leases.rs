//! Pages held in their slots for a while, for clients that lend views of them instead of copying
//! them (`Request::Lease`, the zero-copy API). A held page's `Bytes` keep its slot from being
//! given back (evicted pages included) until the lease runs out; a lease never runs longer than
//! [`MAX_LEASE`], and all leases together never hold more than a set number of bytes, so clients
//! cannot pin the memory tier.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::page_store::Page;

/// The longest lease granted.
pub const MAX_LEASE: Duration = Duration::from_secs(30);

/// The leases of one worker.
#[derive(Debug)]
pub struct Leases {
    held: Mutex<Held>,
    max_bytes: u64,
}

#[derive(Debug, Default)]
struct Held {
    /// By expiry (and a sequence number, for equal instants).
    by_expiry: BTreeMap<(Instant, u64), Vec<Page>>,
    bytes: u64,
    next: u64,
}

impl Leases {
    /// Leases holding at most `max_bytes` of pages at once.
    pub fn new(max_bytes: u64) -> Self {
        Leases {
            held: Mutex::new(Held::default()),
            max_bytes,
        }
    }

    /// Hold `pages` for `want` (at most [`MAX_LEASE`]); the time granted, or zero when holding
    /// them would pass the byte limit (the client then copies instead).
    pub fn grant(&self, pages: Vec<Page>, want: Duration) -> Duration {
        let now = Instant::now();
        let bytes: u64 = pages.iter().map(|p| p.data.len() as u64).sum();
        let granted = want.min(MAX_LEASE);
        let mut held = self.held.lock();
        held.expire(now);
        if granted.is_zero() || held.bytes + bytes > self.max_bytes {
            return Duration::ZERO;
        }
        let seq = held.next;
        held.next += 1;
        held.bytes += bytes;
        held.by_expiry.insert((now + granted, seq), pages);
        ::metrics::gauge!(crate::metrics::LEASED_BYTES).set(held.bytes as f64);
        granted
    }

    /// Let go of the pages whose leases have run out.
    pub fn expire(&self) {
        let mut held = self.held.lock();
        held.expire(Instant::now());
        ::metrics::gauge!(crate::metrics::LEASED_BYTES).set(held.bytes as f64);
    }

    /// Bytes of pages held now.
    pub fn held_bytes(&self) -> u64 {
        self.held.lock().bytes
    }
}

impl Held {
    fn expire(&mut self, now: Instant) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let pages = entry.remove();
            self.bytes -= pages.iter().map(|p| p.data.len() as u64).sum::<u64>();
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn page(n: usize) -> Page {
        Page::new(Bytes::from(vec![7u8; n]))
    }

    #[test]
    fn leases_hold_pages_until_they_run_out_and_never_past_the_limits() {
        let leases = Leases::new(10_000);
        let p = page(4000);
        assert_eq!(
            leases.grant(vec![p.clone()], Duration::from_millis(50)),
            Duration::from_millis(50)
        );
        assert_eq!(leases.held_bytes(), 4000);
        // The lease holds a reference: the page's bytes cannot be given back meanwhile.
        assert!(!p.data.is_unique());
        assert_eq!(leases.grant(vec![page(4000)], Duration::from_secs(3600)), MAX_LEASE);
        assert_eq!(
            leases.grant(vec![page(4000)], Duration::from_secs(1)),
            Duration::ZERO,
            "over the byte limit"
        );
        assert_eq!(leases.grant(vec![page(1)], Duration::ZERO), Duration::ZERO);
        std::thread::sleep(Duration::from_millis(60));
        leases.expire();
        assert_eq!(
            leases.held_bytes(),
            4000,
            "the first lease ran out, the 30 s one did not"
        );
        assert!(p.data.is_unique(), "its pages were let go");
    }
}
