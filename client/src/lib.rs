//! hoard's native client library.
//!
//! A [`Client`] reads the cluster config (the static list of workers and the mounts), places
//! every (file, chunk) on a consistent-hash [`ring`] with virtual nodes, and reads any byte range
//! of a file by asking the owners of its chunks in parallel. A worker that is down or slower than
//! the deadline is skipped for the next one on the ring, then the under-store is read directly:
//! a read never fails because a cache worker died. Paths are `/MOUNT/key`.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> hoard_client::ClientResult<()> {
//! use hoard_client::Client;
//! let client = Client::from_config_file("cluster-configs/single-node.toml")?;
//! let meta = client.stat("/data/train/shard-0000.tar").await?;
//! let head = client.read("/data/train/shard-0000.tar", 0, 4096).await?;
//! println!("{} bytes, first {} read", meta.size, head.len());
//! # Ok(()) }
//! ```
//! [`BlockingClient`] offers the same calls without an async runtime.
//!
//! # Feature flags
//! None yet.
#![deny(clippy::undocumented_unsafe_blocks)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod blocking;
mod client;
mod error;
mod membership;
pub mod path;
pub use hoard_transport::cluster::TransportChoice;
pub use hoard_transport::ring;

pub use blocking::BlockingClient;
pub use client::{
    Client, ClientBuilder, ComposeOptions, CreateOptions, KeyQuery, LoadProgress, LoadSummary, OpenFile, PageLease,
    Writer,
};
pub use error::{ClientError, ClientResult};
pub use hoard_transport::wire::{FileMeta, ListEntry, ListReply, WorkerStatus};
pub use hoard_ufs::Metadata;
pub use membership::{TransportCounts, TransportStats};

#[cfg(test)]
mod tests {
    /// Futures of the client's calls must be `Send`, so applications can spawn them.
    #[allow(dead_code)]
    fn futures_are_send(client: crate::Client) {
        fn is_send<T: Send>(_: T) {}
        is_send(client.load("/m/x", &|_| {}));
        is_send(client.read("/m/x", 0, 1));
        is_send(client.list("/m", true));
        is_send(client.cluster_status());
    }
}
