//! Preloading: have the owners of every chunk of a file or prefix fill it into their caches,
//! without shipping the bytes to the client.

use std::time::{Duration, Instant};

use futures::StreamExt;
use hoard_transport::wire::{FileKey, FileMeta, ListEntry, ReadRequest, Reply, Request, Response};

use super::{Client, plan};
use crate::error::{ClientError, ClientResult};
use crate::path::HoardPath;

/// What a load did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Files loaded.
    pub files: u64,
    /// Bytes now cached.
    pub bytes: u64,
    /// Of them, bytes that were already cached.
    pub already_cached_bytes: u64,
    /// Time taken.
    pub elapsed: Duration,
}

/// Progress of a running load, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadProgress {
    /// The files to load are known: how many and their total size.
    Planned {
        /// Files.
        files: u64,
        /// Bytes.
        bytes: u64,
    },
    /// This many more bytes are cached.
    Loaded(u64),
}

impl Client {
    /// Preload a file, or every file under a directory, into the cache.
    ///
    /// # Errors
    /// As [`Client::stat`] and [`Client::list`]; [`ClientError::Unavailable`] when a chunk's
    /// owners all fail (a load has nothing to fall back to).
    pub async fn load(&self, path: &str, progress: &(dyn Fn(LoadProgress) + Sync)) -> ClientResult<LoadSummary> {
        let started = Instant::now();
        let p = HoardPath::parse(path)?;
        let files = self.files_under(&p).await?;
        let total: u64 = files.iter().map(|f| f.size).sum();
        progress(LoadProgress::Planned {
            files: files.len() as u64,
            bytes: total,
        });
        let cfg = &self.inner.config;
        let (chunk, max_req) = (cfg.chunk_size.as_u64(), cfg.client.max_request_bytes.as_u64());
        // Collected first: a lazy iterator of closures here would make this future not `Send`.
        let requests: Vec<(FileKey, bool, u64, u64, u64)> = files
            .iter()
            .flat_map(|f| {
                let file = FileKey {
                    mount: p.mount.clone(),
                    path: f.path.clone(),
                    version: f.version.clone(),
                };
                plan::split(0, f.size, chunk, max_req)
                    .into_iter()
                    .map(move |(off, n)| (file.clone(), f.homed, f.size, off, n))
            })
            .collect();
        let mut results = futures::stream::iter(requests)
            .map(|(file, homed, size, off, n)| self.load_piece(file, homed, size, off, n))
            .buffer_unordered(cfg.client.parallel_requests as usize);
        let mut summary = LoadSummary {
            files: files.len() as u64,
            ..LoadSummary::default()
        };
        while let Some(result) = results.next().await {
            let (bytes, cached) = result?;
            summary.bytes += bytes;
            summary.already_cached_bytes += cached;
            progress(LoadProgress::Loaded(bytes));
        }
        summary.elapsed = started.elapsed();
        Ok(summary)
    }

    /// The file a path names, or every file under it.
    async fn files_under(&self, p: &HoardPath) -> ClientResult<Vec<FileMeta>> {
        if !p.key.is_empty() && !p.key.ends_with('/') {
            match self.stat_path(p).await {
                Ok(meta) => return Ok(vec![meta]),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let dir = format!("/{}/{}", p.mount, p.dir_prefix());
        let files: Vec<FileMeta> = self
            .list(&dir, true)
            .await?
            .into_iter()
            .filter_map(|e| match e {
                // A directory marker (`dir/`) holds no bytes to load.
                ListEntry::File(f) if f.path.ends_with('/') => None,
                ListEntry::File(f) => Some(f),
                ListEntry::Prefix(_) => None,
            })
            .collect();
        if files.is_empty() && !p.key.is_empty() {
            return Err(ClientError::NotFound { path: p.to_string() });
        }
        Ok(files)
    }

    /// Load one piece on its owner; returns (bytes, bytes already cached).
    async fn load_piece(
        &self,
        file: FileKey,
        homed: bool,
        size: u64,
        offset: u64,
        len: u64,
    ) -> ClientResult<(u64, u64)> {
        let key = self.read_key(&file, homed, offset);
        let p = HoardPath {
            mount: file.mount.clone(),
            key: file.path.clone(),
        };
        let req = Request::Load(ReadRequest {
            file,
            file_size: size,
            offset,
            len,
        });
        match self.call_owners(key, req).await {
            Ok(Reply {
                message: Response::Loaded(l),
                ..
            }) => {
                let page = self.inner.config.page_size.as_u64();
                Ok((l.bytes, (l.hit_pages * page).min(l.bytes)))
            }
            Ok(other) => Err(self.reply_error(&p, other)),
            Err(last) => Err(ClientError::Unavailable {
                path: p.to_string(),
                source: last.into(),
            }),
        }
    }
}
