//! Helpers for hoard's end-to-end tests: a real Garage S3 server, real worker processes on
//! loopback ports, and the `hoard` binary. Nothing here is a test double.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cluster;
pub mod fuse;
pub mod garage;

/// Deterministic pseudo-random bytes (xorshift64*), different for every seed: object contents
/// whose every range is checkable.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}
