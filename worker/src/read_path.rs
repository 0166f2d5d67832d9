//! The read path: cached pages, filled from the under-store on a miss.
//!
//! - **Single flight**: concurrent misses of one page make one under-store request. The first
//!   reader registers the page as in flight; later readers wait on the same fill.
//! - **Coalescing**: a reader's missing pages are fetched in runs of consecutive pages, one ranged
//!   GET per run (at most `fill_request_max_bytes`).
//! - **Read-ahead**: a reader that continues where its previous read ended gets the next pages of
//!   the chunk fetched before it asks.
//! - **Versions**: fills ask the under-store for exactly the version the client stat'ed; a changed
//!   object fails the fill with [`Status::StaleVersion`] instead of mixing two versions.
//!
//! Fills run as their own tasks, so a client that disconnects mid-read cannot strand a page "in
//! flight": the fill completes (or fails) and releases it either way.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use hoard_transport::wire::Status;
use hoard_ufs::{UfsError, UnderStore};
use parking_lot::Mutex;
use tokio::sync::{Semaphore, watch};

use crate::metrics;
use crate::page_store::{FileId, MemoryPageStore, Page, PageKey};
use crate::ufs_meter::UfsMeter;
use crate::write::WritePath;

/// Why a page could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillError {
    /// Wire status for the reply.
    pub status: Status,
    /// What happened.
    pub message: String,
}

impl FillError {
    fn from_ufs(e: &UfsError) -> FillError {
        FillError {
            status: ufs_status(e),
            message: error_chain(e),
        }
    }
}

/// The wire status of an under-store error.
pub fn ufs_status(e: &UfsError) -> Status {
    match e {
        UfsError::VersionMismatch { .. } => Status::StaleVersion,
        UfsError::NotFound { .. } => Status::NotFound,
        UfsError::Invalid { .. } => Status::InvalidArgument,
        e if e.is_retryable() => Status::UfsUnavailable,
        _ => Status::UfsError,
    }
}

/// An error and its sources, one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

type FillResult = Result<Page, FillError>;
type FillRx = watch::Receiver<Option<FillResult>>;

/// The file a read is about.
#[derive(Debug)]
pub struct FillSource {
    /// Where its bytes come from.
    pub content: Content,
    /// Id of that file version.
    pub file: FileId,
    /// Size of that version, as the client knows it.
    pub size: u64,
}

/// Where a file version's bytes come from on a miss.
#[derive(Debug)]
pub enum Content {
    /// An under-store object at a version.
    Ufs {
        /// The under-store.
        ufs: Arc<dyn UnderStore>,
        /// Key in the under-store.
        path: String,
        /// Version the bytes must have.
        version: String,
    },
    /// A file version written through hoard, held by the write path.
    Written {
        /// The write path.
        write: Arc<WritePath>,
        /// Mount name.
        mount: String,
        /// Path in the mount.
        path: String,
        /// The version.
        version: String,
    },
}

impl Content {
    /// Bytes `[start, end)` (fewer at the end of the file).
    async fn read(&self, start: u64, end: u64) -> Result<Bytes, UfsError> {
        match self {
            Content::Ufs { ufs, path, version } => ufs.read_range(path, start..end, Some(version)).await,
            Content::Written {
                write,
                mount,
                path,
                version,
            } => write.read(mount, path, version, start, end).await,
        }
    }

    fn describe(&self) -> &str {
        match self {
            Content::Ufs { path, .. } => path,
            Content::Written { path, .. } => path,
        }
    }
}

/// Pages of a read, in order.
#[derive(Debug)]
pub struct ReadPages {
    /// `(page index, page)` for every page the range touches.
    pub pages: Vec<(u64, Page)>,
    /// How many were cache hits.
    pub hits: u32,
}

/// Settings of the read path.
#[derive(Debug, Clone)]
pub struct ReadPathConfig {
    /// Page size.
    pub page_size: u64,
    /// Chunk size (read-ahead stays inside the chunk).
    pub chunk_size: u64,
    /// Largest fill GET.
    pub fill_request_max_bytes: u64,
    /// Read-ahead window (0 disables).
    pub readahead_bytes: u64,
    /// Concurrent under-store requests.
    pub ufs_concurrency: usize,
}

/// Cached reads with single-flight fills and read-ahead.
#[derive(Debug)]
pub struct ReadPath {
    store: Arc<MemoryPageStore>,
    config: ReadPathConfig,
    inflight: Mutex<HashMap<PageKey, FillRx>>,
    ufs_permits: Semaphore,
    /// Where each recently read file's last read ended, to spot sequential readers.
    streams: Mutex<HashMap<FileId, u64>>,
    meter: Arc<UfsMeter>,
}

const MAX_TRACKED_STREAMS: usize = 65_536;

impl ReadPath {
    /// A read path over `store`.
    pub fn new(store: Arc<MemoryPageStore>, config: ReadPathConfig, meter: Arc<UfsMeter>) -> Self {
        assert!(
            config.page_size > 0 && config.chunk_size >= config.page_size,
            "page and chunk sizes"
        );
        ReadPath {
            store,
            ufs_permits: Semaphore::new(config.ufs_concurrency.max(1)),
            config,
            inflight: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            meter,
        }
    }

    /// The page size.
    pub fn page_size(&self) -> u64 {
        self.config.page_size
    }

    /// The page store behind this read path.
    pub fn store(&self) -> &MemoryPageStore {
        &self.store
    }

    /// The page store, shared.
    pub fn store_arc(&self) -> Arc<MemoryPageStore> {
        self.store.clone()
    }

    /// The pages covering `[offset, offset + len)` of a file version, clipped to its size.
    ///
    /// # Errors
    /// [`FillError`] when a missing page cannot be filled.
    pub async fn read(self: &Arc<Self>, src: &Arc<FillSource>, offset: u64, len: u64) -> Result<ReadPages, FillError> {
        let end = offset.saturating_add(len).min(src.size);
        if offset >= end {
            return Ok(ReadPages {
                pages: Vec::new(),
                hits: 0,
            });
        }
        let ps = self.config.page_size;
        let (first, last) = (offset / ps, (end - 1) / ps);
        let mut slots: Vec<Result<Page, FillRx>> = Vec::with_capacity((last - first + 1) as usize);
        let mut missing = Vec::new();
        for index in first..=last {
            match self.store.get(&PageKey { file: src.file, index }) {
                Some(page) => slots.push(Ok(page)),
                None => {
                    missing.push((index, slots.len()));
                    slots.push(Ok(Page::new(Bytes::new()))); // placeholder, replaced below
                }
            }
        }
        let hits = (slots.len() - missing.len()) as u32;
        if !missing.is_empty() {
            let receivers = self.start_fills(src, missing.iter().map(|(index, _)| *index));
            for ((_, slot), rx) in missing.iter().zip(receivers) {
                slots[*slot] = Err(rx);
            }
        }
        self.maybe_read_ahead(src, offset, end, last);
        let mut pages = Vec::with_capacity(slots.len());
        for (index, slot) in (first..=last).zip(slots) {
            let page = match slot {
                Ok(page) => page,
                Err(rx) => wait_fill(rx).await?,
            };
            pages.push((index, page));
        }
        Ok(ReadPages { pages, hits })
    }

    /// Register fills for pages not already cached or in flight, and start them; returns a
    /// receiver per requested page.
    fn start_fills(self: &Arc<Self>, src: &Arc<FillSource>, indexes: impl Iterator<Item = u64>) -> Vec<FillRx> {
        let mut receivers = Vec::new();
        let mut to_fill: Vec<(u64, watch::Sender<Option<FillResult>>)> = Vec::new();
        {
            let mut inflight = self.inflight.lock();
            for index in indexes {
                let key = PageKey { file: src.file, index };
                if let Some(rx) = inflight.get(&key) {
                    receivers.push(rx.clone());
                } else if let Some(page) = self.store.peek(&key) {
                    // Filled between our lookup and taking the lock.
                    receivers.push(watch::channel(Some(Ok(page))).1);
                } else {
                    let (tx, rx) = watch::channel(None);
                    inflight.insert(key, rx.clone());
                    receivers.push(rx);
                    to_fill.push((index, tx));
                }
            }
        }
        let max_pages = (self.config.fill_request_max_bytes / self.config.page_size).max(1) as usize;
        for run in split_runs(to_fill, max_pages) {
            tokio::spawn(self.clone().fill_run(src.clone(), run));
        }
        receivers
    }

    async fn fill_run(self: Arc<Self>, src: Arc<FillSource>, run: Vec<(u64, watch::Sender<Option<FillResult>>)>) {
        let ps = self.config.page_size;
        let _release = InflightGuard {
            path: &self,
            file: src.file,
            indexes: run.iter().map(|(i, _)| *i).collect(),
        };
        let start = run[0].0 * ps;
        let end = (run[run.len() - 1].0 + 1) * ps;
        let result = {
            let _permit = self.ufs_permits.acquire().await.expect("the semaphore is never closed");
            match &src.content {
                Content::Ufs { .. } => self.meter.call("read", src.content.read(start, end)).await,
                Content::Written { .. } => src.content.read(start, end).await,
            }
        };
        match result {
            Ok(bytes) => {
                ::metrics::counter!(metrics::UFS_BYTES).increment(bytes.len() as u64);
                for (i, (index, tx)) in run.into_iter().enumerate() {
                    let from = (i as u64 * ps).min(bytes.len() as u64) as usize;
                    let to = ((i as u64 + 1) * ps).min(bytes.len() as u64) as usize;
                    // Each page is copied from the GET buffer into a slot of its own (the buffer
                    // goes when the run is done), and handed on as cached: its bytes view the
                    // slot, so a `Locate` of it can say where it is. A page no slot was found
                    // for gets a heap copy.
                    let slice = &bytes[from..to];
                    let key = PageKey { file: src.file, index };
                    let cached = if slice.is_empty() {
                        None
                    } else {
                        self.store.cache(key, slice)
                    };
                    let page = cached.unwrap_or_else(|| Page::new(Bytes::copy_from_slice(slice)));
                    let _ = tx.send(Some(Ok(page)));
                }
            }
            Err(e) => {
                let err = FillError::from_ufs(&e);
                tracing::debug!(path = %src.content.describe(), "fill failed: {}", err.message);
                for (_, tx) in run {
                    let _ = tx.send(Some(Err(err.clone())));
                }
            }
        }
    }

    fn maybe_read_ahead(self: &Arc<Self>, src: &Arc<FillSource>, offset: u64, end: u64, last: u64) {
        let (ps, chunk) = (self.config.page_size, self.config.chunk_size);
        if self.config.readahead_bytes == 0 {
            return;
        }
        let sequential = {
            let mut streams = self.streams.lock();
            if streams.len() >= MAX_TRACKED_STREAMS {
                streams.clear();
            }
            let previous_end = streams.insert(src.file, end);
            let near = |prev: u64| prev.abs_diff(offset) <= 2 * (end - offset).max(ps);
            // A read that starts a chunk (past the file's start) continues a reader that the
            // previous chunk's owner saw.
            previous_end.is_some_and(near) || (offset > 0 && offset.is_multiple_of(chunk))
        };
        if !sequential {
            return;
        }
        let chunk_end = (last * ps / chunk + 1) * chunk;
        let ra_end = (end + self.config.readahead_bytes).min(chunk_end).min(src.size);
        if ra_end <= (last + 1) * ps {
            return;
        }
        let wanted: Vec<u64> = ((last + 1)..ra_end.div_ceil(ps))
            .filter(|index| {
                !self.store.contains(&PageKey {
                    file: src.file,
                    index: *index,
                })
            })
            .collect();
        if !wanted.is_empty() {
            ::metrics::counter!(metrics::READAHEAD_PAGES).increment(wanted.len() as u64);
            let _ = self.start_fills(src, wanted.into_iter());
        }
    }
}

/// Removes a run's pages from the in-flight table when its fill ends, however it ends.
struct InflightGuard<'a> {
    path: &'a ReadPath,
    file: FileId,
    indexes: Vec<u64>,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        let mut inflight = self.path.inflight.lock();
        for index in &self.indexes {
            inflight.remove(&PageKey {
                file: self.file,
                index: *index,
            });
        }
    }
}

async fn wait_fill(mut rx: FillRx) -> Result<Page, FillError> {
    match rx.wait_for(Option::is_some).await {
        Ok(v) => v.clone().expect("waited for Some"),
        Err(_) => Err(FillError {
            status: Status::Internal,
            message: "page fill was abandoned".into(),
        }),
    }
}

/// Split sorted page indexes into runs of consecutive pages, at most `max` pages each.
fn split_runs<T>(items: Vec<(u64, T)>, max: usize) -> Vec<Vec<(u64, T)>> {
    let mut runs: Vec<Vec<(u64, T)>> = Vec::new();
    for (index, item) in items {
        match runs.last_mut() {
            Some(run) if run.len() < max && run.last().is_some_and(|(i, _)| *i + 1 == index) => run.push((index, item)),
            _ => runs.push(vec![(index, item)]),
        }
    }
    runs
}

#[cfg(test)]
mod tests;
