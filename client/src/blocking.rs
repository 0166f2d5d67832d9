//! A blocking façade over [`Client`](crate::Client), for callers without an async runtime.

use bytes::Bytes;
use hoard_transport::wire::{FileMeta, ListEntry, WorkerStatus};

use crate::Client;
use crate::client::{LoadProgress, LoadSummary};
use crate::error::ClientResult;

/// A [`Client`] with its own small tokio runtime; every method blocks until done.
///
/// Do not call it from inside an async runtime (tokio panics on nested `block_on`).
#[derive(Debug)]
pub struct BlockingClient {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl BlockingClient {
    /// Wrap a client.
    ///
    /// # Errors
    /// When the runtime's threads cannot be started.
    pub fn new(client: Client) -> std::io::Result<BlockingClient> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hoard-client")
            .enable_all()
            .build()?;
        Ok(BlockingClient { runtime, client })
    }

    /// The async client inside.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// See [`Client::stat`].
    ///
    /// # Errors
    /// As [`Client::stat`].
    pub fn stat(&self, path: &str) -> ClientResult<FileMeta> {
        self.runtime.block_on(self.client.stat(path))
    }

    /// See [`Client::list`].
    ///
    /// # Errors
    /// As [`Client::list`].
    pub fn list(&self, path: &str, recursive: bool) -> ClientResult<Vec<ListEntry>> {
        self.runtime.block_on(self.client.list(path, recursive))
    }

    /// See [`Client::read`].
    ///
    /// # Errors
    /// As [`Client::read`].
    pub fn read(&self, path: &str, offset: u64, len: u64) -> ClientResult<Bytes> {
        self.runtime.block_on(self.client.read(path, offset, len))
    }

    /// See [`Client::read_all`].
    ///
    /// # Errors
    /// As [`Client::read`].
    pub fn read_all(&self, path: &str) -> ClientResult<Bytes> {
        self.runtime.block_on(self.client.read_all(path))
    }

    /// See [`Client::load`].
    ///
    /// # Errors
    /// As [`Client::load`].
    pub fn load(&self, path: &str, progress: &(dyn Fn(LoadProgress) + Sync)) -> ClientResult<LoadSummary> {
        self.runtime.block_on(self.client.load(path, progress))
    }

    /// See [`Client::cluster_status`].
    pub fn cluster_status(&self) -> Vec<(String, Result<WorkerStatus, String>)> {
        self.runtime.block_on(self.client.cluster_status())
    }
}
