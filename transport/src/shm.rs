//! Shared memory: the transport of a client on the same host as a worker.
//!
//! A worker that serves shared memory listens on a Unix socket besides its TCP port, and offers
//! it in every TCP handshake ([`ShmOffer`](crate::wire::ShmOffer): the socket's path and the host's boot id). A client
//! whose boot id is the same connects to the socket and shakes hands again; the worker's answer
//! carries the descriptors of its memory regions (`SCM_RIGHTS`: the arena's memfd and the memfd
//! of its generation words, per region), which the client maps read-only ([`RegionReader`](crate::region::RegionReader)).
//! The memfds are sealed: a client can map them, never write them or map them writable.
//!
//! From then on the socket carries the same frames as TCP (control, metadata, writes, and
//! `Locate` for reads), and the page bytes never cross it: the worker answers a read with where
//! the pages sit ([`crate::wire::LocateReply`]) and the client copies them out of its mapping,
//! checking each slot's generation before and after the copy. A client that caches locations
//! copies a hot page again without sending anything.

mod client;
mod server;

use std::path::PathBuf;

pub use client::{MappedRegions, ShmTransport};
pub use server::{SharedRegion, serve_unix};

/// This host's identity as shared-memory peers compare it: the kernel's boot id, which two
/// processes share exactly when they run on the same kernel. `None` where it cannot be read
/// (then shared memory is neither offered nor used).
pub fn host_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// Where a worker's shared-memory socket lies unless configured: in `$XDG_RUNTIME_DIR` (or
/// `/tmp`), named after the worker and its TCP port, so that several workers on one host never
/// collide.
pub fn default_socket_path(worker_id: &str, port: u16) -> PathBuf {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let safe: String = worker_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("hoard-{safe}-{port}.sock"))
}

#[cfg(test)]
mod tests;
