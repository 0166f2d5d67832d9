//! RDMA: one-sided READs of a worker's registered regions (libibverbs through `rdma-sys`).
//!
//! A worker registers its memory tier's arena, the arena's generation words, and its NVMe-tier
//! files with every RDMA device it uses ([`RdmaServer`], remote read only), and offers RDMA in
//! its TCP handshake ([`crate::wire::HelloReply::rdma`]). A client with a device of its own
//! ([`ClientDevice`]) creates a reliable-connected queue pair and sends its end over that TCP
//! connection ([`crate::wire::Request::RdmaConnect`]); the worker creates its end, connects it,
//! and answers with its end and the regions' addresses and keys. The queue pair lives as long as
//! the TCP connection; a client keeps a pool of such connections per worker (so, of queue
//! pairs), and the TCP side carries everything but page bytes.
//!
//! A read asks the worker where the pages are (`Locate`, over TCP, or not at all when the
//! client remembers), then posts, per page, an RDMA READ of the bytes it wants into a registered
//! buffer of its own followed by a READ of the slot's generation word, chained on one queue
//! pair, and polls for the chain's completion ([`RdmaLink::read`]). A page is returned only if
//! the generation read after its bytes is the location's (the responder runs a queue pair's
//! READs in order), and, when the whole page was read, if its CRC32C is the location's too;
//! otherwise it is stale and asked for again. The worker spends no CPU on the bytes.
//!
//! Completions: the reader busy-polls the client's completion queue for a bounded time
//! (`client.rdma_busy_poll`); past it, it arms the queue and sleeps until a completion thread,
//! woken by the queue's event channel, hands it its buffer. An idle client burns no CPU.
//!
//! Built only with the `rdma` cargo feature. Without it (or without a device, or without a kernel
//! RDMA stack) every constructor answers [`RdmaError::Unavailable`] saying why, and hoard runs
//! over shared memory and TCP.

use std::io;
use std::time::Duration;

#[cfg(not(feature = "rdma"))]
mod absent;
#[cfg(feature = "rdma")]
mod client;
#[cfg(feature = "rdma")]
mod server;
#[cfg(feature = "rdma")]
#[allow(unsafe_code)] // The verbs calls; see the module's documentation.
mod verbs;

#[cfg(not(feature = "rdma"))]
pub use absent::{ClientDevice, RdmaLink, RdmaServer, ServerQp};
#[cfg(feature = "rdma")]
pub use client::{ClientDevice, RdmaLink};
#[cfg(feature = "rdma")]
pub use server::{RdmaServer, ServerQp};

/// Whether this build has the RDMA transport.
pub const BUILT: bool = cfg!(feature = "rdma");

/// What went wrong with RDMA.
#[derive(Debug, thiserror::Error)]
pub enum RdmaError {
    /// RDMA cannot be used here, and why.
    #[error("RDMA is not available: {0}")]
    Unavailable(String),
    /// A verbs call failed.
    #[error("{call} failed: {source}")]
    Verbs {
        /// The call.
        call: &'static str,
        /// Its errno.
        source: io::Error,
    },
    /// Memory could not be registered with the device.
    #[error(
        "registering {bytes} bytes with the RDMA device failed: {source}; registered memory is \
         locked, so raise the locked-memory limit (`ulimit -l unlimited`, `LimitMEMLOCK=infinity` \
         in a systemd unit, `--ulimit memlock=-1` for a container)"
    )]
    Register {
        /// Bytes of the region.
        bytes: u64,
        /// `ibv_reg_mr`'s errno.
        source: io::Error,
    },
    /// A READ completed with an error (the queue pair is in error now).
    #[error("RDMA read failed: {0}")]
    Completion(String),
    /// No completion in time.
    #[error("RDMA read not completed within {0:?}")]
    Timeout(Duration),
    /// The peer said something that does not fit.
    #[error("RDMA set-up: {0}")]
    Protocol(String),
}

/// Which devices and ports a worker uses.
#[derive(Debug, Clone, Default)]
pub struct ServerSettings {
    /// Devices to register on (empty: all with an active port).
    pub devices: Vec<String>,
    /// GID index (unset: the first IPv4-mapped GID, else 0).
    pub gid_index: Option<u32>,
}

/// How a client uses RDMA.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Device (unset: the first with an active port).
    pub device: Option<String>,
    /// GID index (unset: the first IPv4-mapped GID, else 0).
    pub gid_index: Option<u32>,
    /// How long a reader spins on the completion queue before sleeping.
    pub busy_poll: Duration,
    /// Registered 1 MiB buffers READs land in.
    pub buffers: usize,
    /// Post the generation words' READs after all of a chain's data READs, the first with
    /// `IBV_SEND_FENCE`: it starts only once the data READs have completed, so the words are
    /// read after the bytes on any device. Without it the check relies on the responder
    /// executing a queue pair's READs in order (rxe does; a NIC that prefetches may not), and
    /// saves a round trip per chain.
    pub fence: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            device: None,
            gid_index: None,
            busy_poll: Duration::from_micros(100),
            buffers: 16,
            fence: true,
        }
    }
}

/// Why a read over RDMA did not return the bytes.
#[derive(Debug)]
pub enum ReadFailure {
    /// The page with this index was no longer where its location said (evicted, its slot
    /// reused): ask the worker where it is now.
    Stale(u64),
    /// The queue pair or the device failed (the link is failed from now on): read another way.
    Failed(RdmaError),
    /// This read cannot go over RDMA now (a page part larger than a buffer, no free buffer in
    /// time); the link is fine: read it another way.
    Elsewhere(String),
}

/// Pick a port's GID: `wanted`, else the first IPv4-mapped one (RoCE over IPv4) whose type is
/// RoCE v2 (routable; a table may list each address twice, v1 first), else the first
/// IPv4-mapped one of unknown type, else index 0. `gids` yields `(index, gid, is RoCE v2 if
/// known)`.
#[cfg_attr(not(feature = "rdma"), allow(dead_code))]
fn pick_gid(wanted: Option<u32>, gids: impl Iterator<Item = (u32, [u8; 16], Option<bool>)>) -> Option<(u32, [u8; 16])> {
    let (mut first, mut unknown) = (None, None);
    for (index, gid, v2) in gids {
        if gid == [0; 16] {
            continue;
        }
        match wanted {
            Some(w) if w == index => return Some((index, gid)),
            Some(_) => continue,
            None => {}
        }
        let v4_mapped = gid[..10] == [0; 10] && gid[10..12] == [0xff, 0xff];
        match (v4_mapped, v2) {
            (true, Some(true)) => return Some((index, gid)),
            (true, None) if unknown.is_none() => unknown = Some((index, gid)),
            _ => {}
        }
        if index == 0 {
            first = Some((index, gid));
        }
    }
    if wanted.is_some() { None } else { unknown.or(first) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipv4_mapped_roce_v2_gid_is_preferred_unless_one_is_asked_for() {
        let link_local = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        let mut v4 = [0u8; 16];
        v4[10] = 0xff;
        v4[11] = 0xff;
        v4[12..].copy_from_slice(&[198, 18, 0, 1]);
        // rxe: one entry per address, type RoCE v2.
        let table = || [(0, link_local, Some(true)), (1, v4, Some(true)), (2, [0; 16], None)].into_iter();
        assert_eq!(pick_gid(None, table()), Some((1, v4)));
        assert_eq!(pick_gid(Some(0), table()), Some((0, link_local)));
        assert_eq!(pick_gid(Some(2), table()), None, "an empty entry is not a GID");
        assert_eq!(
            pick_gid(None, [(0, link_local, None)].into_iter()),
            Some((0, link_local))
        );
        // mlx5: each address as RoCE v1, then as v2: the v2 entry wins.
        let mlx = [
            (0, link_local, Some(false)),
            (1, link_local, Some(true)),
            (2, v4, Some(false)),
            (3, v4, Some(true)),
        ];
        assert_eq!(pick_gid(None, mlx.into_iter()), Some((3, v4)));
        // Types unknown (no sysfs): the first IPv4-mapped one.
        let unknown = [(0, link_local, None), (1, v4, None), (2, v4, None)];
        assert_eq!(pick_gid(None, unknown.into_iter()), Some((1, v4)));
    }

    #[cfg(not(feature = "rdma"))]
    #[test]
    fn without_the_feature_rdma_says_why_it_is_not_used() {
        let err = RdmaServer::open(&ServerSettings::default()).expect_err("not built");
        assert!(err.to_string().contains("`rdma` feature"), "{err}");
        let err = ClientDevice::shared(&ClientSettings::default()).expect_err("not built");
        assert!(err.to_string().contains("`rdma` feature"), "{err}");
    }
}
