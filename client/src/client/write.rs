//! The write API: files streamed to the mount's coordinator, appends, renames, deletes.
//!
//! Every mutation of a mount goes to one worker, the mount's *coordinator* (the ring owner of the
//! mount's name), which holds the mount's namespace and its write-back journal. Writes never fail
//! over to another worker: a second worker accepting writes for the same mount would fork the
//! namespace. When the coordinator is down, writes fail with [`ClientError::Unavailable`].

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hoard_transport::wire::{
    ComposeRequest, ComposeSource, DeleteRequest, FileMeta, PathRequest, RenameRequest, Request, Response,
    SetMetadataRequest, Status, WriteDataRequest, WriteOpenRequest, WriteSyncRequest,
};
use hoard_transport::{Payload, Reply};
use hoard_ufs::Metadata;
use tokio::task::JoinHandle;

use super::Client;
use crate::error::{ClientError, ClientResult};
use crate::path::HoardPath;
use crate::ring::mount_key;

/// Most write requests of one [`Writer`] in flight at once.
const WRITES_IN_FLIGHT: usize = 4;

/// How a file is opened for writing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// Fail with [`ClientError::AlreadyExists`] if the path exists.
    pub exclusive: bool,
    /// Append to the file (created empty if missing) instead of replacing it.
    pub append: bool,
    /// User metadata of the new file (S3's `x-amz-meta-*`; keys as
    /// [`hoard_ufs::validate_metadata`] allows). Ignored when appending: the file keeps its own.
    pub metadata: Metadata,
}

/// How [`Client::compose`] makes its file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComposeOptions {
    /// Delete the sources (except the destination itself) in the same step: a multipart
    /// upload's parts once they are the object.
    pub remove_sources: bool,
    /// The new file's whole user metadata, content-bound keys
    /// ([`hoard_transport::wire::is_content_bound`]) included. `None`: the first source's
    /// (without its content-bound keys unless it is the only source).
    pub metadata: Option<Metadata>,
    /// Fail with [`ClientError::AlreadyExists`] if the destination exists.
    pub exclusive: bool,
}

impl Client {
    /// The coordinator of a mount: where its writes and metadata go.
    fn coordinator(&self, mount: &str) -> ClientResult<usize> {
        self.check_mount(mount)?;
        self.inner
            .ring
            .owner(mount_key(mount))
            .ok_or_else(|| ClientError::Config(hoard_transport::cluster::ConfigError::Invalid("no workers".into())))
    }

    /// Send a write-side request to a mount's coordinator, once (writes are not idempotent).
    async fn call_coordinator(&self, p: &HoardPath, request: Request, payload: Payload) -> ClientResult<Reply> {
        let index = self.coordinator(&p.mount)?;
        let worker = &self.inner.workers[index];
        let timeout = self.inner.config.client.write_timeout;
        match worker.call_once(&self.inner.policy, request, payload, timeout).await {
            Ok(Reply {
                message: Response::Error(e),
                ..
            }) => Err(write_error(p, Status::from_u16(e.status), e.message)),
            Ok(reply) => Ok(reply),
            Err(e) => Err(ClientError::Unavailable {
                path: p.to_string(),
                source: format!("coordinator {} of mount {}: {e}", worker.entry.id, p.mount).into(),
            }),
        }
    }

    /// Open a file for writing: its bytes stream to the coordinator as they are written, and it
    /// appears (replacing what was there) when [`Writer::close`] or [`Writer::flush`] returns.
    ///
    /// # Errors
    /// [`ClientError::AlreadyExists`] with `exclusive` when the path exists; as [`Client::put`].
    pub async fn create(&self, path: &str, options: CreateOptions) -> ClientResult<Writer> {
        let p = file_path(path)?;
        let request = Request::WriteOpen(WriteOpenRequest {
            mount: p.mount.clone(),
            path: p.key.clone(),
            append: options.append,
            exclusive: options.exclusive,
            metadata: options.metadata.into_iter().collect(),
        });
        match self.call_coordinator(&p, request, Payload::default()).await?.message {
            Response::WriteOpened(opened) => Ok(Writer {
                client: self.clone(),
                path: p,
                handle: opened.handle,
                max_write: opened.max_write.clamp(4096, 64 << 20) as usize,
                buf: BytesMut::new(),
                sent: 0,
                in_flight: VecDeque::new(),
                finished: false,
            }),
            other => Err(unexpected(&p, &other)),
        }
    }

    /// Open a file to append to it (an empty file is created if it is missing). The bytes are
    /// added after whatever the file holds when [`Writer::close`] (or each [`Writer::flush`])
    /// returns, all together: concurrent appenders never interleave within one flush.
    ///
    /// # Errors
    /// As [`Client::create`].
    pub async fn open_append(&self, path: &str) -> ClientResult<Writer> {
        let options = CreateOptions {
            append: true,
            ..CreateOptions::default()
        };
        self.create(path, options).await
    }

    /// Write a whole file at once (create or replace).
    ///
    /// # Errors
    /// [`ClientError::Unavailable`] when the coordinator cannot be reached; [`ClientError::Worker`]
    /// with [`Status::NoSpace`] when the journal's disk or the mount's cache-only capacity is
    /// full, or with the under-store's error in `through` mode.
    pub async fn put(&self, path: &str, data: Bytes) -> ClientResult<FileMeta> {
        let mut writer = self.create(path, CreateOptions::default()).await?;
        writer.write_bytes(data).await?;
        writer.close().await
    }

    /// Append bytes to a file (created if missing), atomically: readers see all of them or none.
    ///
    /// # Errors
    /// As [`Client::put`].
    pub async fn append(&self, path: &str, data: Bytes) -> ClientResult<FileMeta> {
        let mut writer = self.open_append(path).await?;
        writer.write_bytes(data).await?;
        writer.close().await
    }

    /// Rename a file, or a directory with everything under it. Every client sees the new names
    /// when this returns; in `back` mode the under-store catches up in the background.
    ///
    /// # Errors
    /// [`ClientError::NotFound`] when `src` does not exist; [`ClientError::Worker`] with
    /// [`Status::NotADirectory`] when a file and a directory meet.
    pub async fn rename(&self, src: &str, dst: &str) -> ClientResult<()> {
        let (from, to) = (file_path(src)?, file_path(dst)?);
        if from.mount != to.mount {
            return Err(ClientError::InvalidPath {
                path: dst.to_owned(),
                reason: "a rename cannot leave its mount",
            });
        }
        let request = Request::Rename(RenameRequest {
            mount: from.mount.clone(),
            src: from.key.clone(),
            dst: to.key,
        });
        self.call_done(&from, request).await
    }

    /// Make the file `dst` of the bytes of `sources` (whole files, in order, each at the version
    /// given with it, if any) without reading them: the coordinator makes the new file of the
    /// sources' stored bytes, and the under-store gets it by server-side copies where it can. A
    /// copy is a compose of one source. Durable and visible as a rename is.
    ///
    /// # Errors
    /// [`ClientError::NotFound`] when a source is missing; [`ClientError::Worker`] with
    /// [`Status::StaleVersion`] when a source changed from the version given,
    /// [`Status::NotADirectory`] when `dst` is a directory, [`Status::InvalidArgument`] for more
    /// than 10,000 sources or none; [`ClientError::AlreadyExists`] with `exclusive`.
    pub async fn compose(
        &self,
        dst: &str,
        sources: &[(&str, Option<&str>)],
        options: ComposeOptions,
    ) -> ClientResult<FileMeta> {
        let to = file_path(dst)?;
        let mut parts = Vec::with_capacity(sources.len());
        for (path, version) in sources {
            let from = file_path(path)?;
            if from.mount != to.mount {
                return Err(ClientError::InvalidPath {
                    path: (*path).to_owned(),
                    reason: "a compose cannot take bytes from another mount",
                });
            }
            parts.push(ComposeSource {
                path: from.key,
                version: version.map(str::to_owned),
            });
        }
        let request = Request::Compose(ComposeRequest {
            mount: to.mount.clone(),
            dst: to.key.clone(),
            sources: parts,
            remove_sources: options.remove_sources,
            metadata: options.metadata.map(|m| m.into_iter().collect()),
            exclusive: options.exclusive,
        });
        match self.call_coordinator(&to, request, Payload::default()).await?.message {
            Response::Committed(meta) => Ok(meta),
            other => Err(unexpected(&to, &other)),
        }
    }

    /// Delete a file, or with `recursive` a directory and everything under it.
    ///
    /// # Errors
    /// [`ClientError::NotFound`]; [`ClientError::Worker`] with [`Status::NotEmpty`] for a
    /// non-empty directory without `recursive`.
    pub async fn delete(&self, path: &str, recursive: bool) -> ClientResult<()> {
        let p = file_path(path)?;
        let request = Request::Delete(DeleteRequest {
            mount: p.mount.clone(),
            path: p.key.clone(),
            recursive,
        });
        self.call_done(&p, request).await
    }

    /// Create a directory (and its parents, as object stores have no real directories).
    ///
    /// # Errors
    /// [`ClientError::AlreadyExists`] when a file has that name.
    pub async fn mkdir(&self, path: &str) -> ClientResult<()> {
        let p = file_path(path)?;
        let request = Request::Mkdir(PathRequest {
            mount: p.mount.clone(),
            path: p.key.clone(),
        });
        self.call_done(&p, request).await
    }

    /// Replace the user metadata of a file (its bytes stay); returns the file's new metadata.
    /// Durable as a rename is: at once in `through` mode, in the background in `back` mode.
    ///
    /// # Errors
    /// [`ClientError::NotFound`] when there is no such file; [`ClientError::Worker`] with
    /// [`Status::InvalidArgument`] for metadata the under-store cannot keep.
    pub async fn set_metadata(&self, path: &str, metadata: &Metadata) -> ClientResult<FileMeta> {
        let p = file_path(path)?;
        let request = Request::SetMetadata(SetMetadataRequest {
            mount: p.mount.clone(),
            path: p.key.clone(),
            metadata: metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        });
        match self.call_coordinator(&p, request, Payload::default()).await?.message {
            Response::Committed(meta) => Ok(meta),
            other => Err(unexpected(&p, &other)),
        }
    }

    /// Wait until everything written, renamed or deleted under `path` (a file, a directory, or
    /// `/MOUNT` for all of it) has reached the under-store.
    ///
    /// # Errors
    /// [`ClientError::Unavailable`] when the coordinator cannot be reached.
    pub async fn sync(&self, path: &str) -> ClientResult<()> {
        let p = HoardPath::parse(path)?;
        let key = p.key.trim_end_matches('/').to_owned();
        let request = Request::Sync(PathRequest {
            mount: p.mount.clone(),
            path: key,
        });
        loop {
            match self.call_done(&p, request.clone()).await {
                // The coordinator answers `Timeout` when the path is still pending after its
                // own wait: ask again.
                Err(ClientError::Worker {
                    status: Status::Timeout,
                    ..
                }) => tokio::time::sleep(Duration::from_millis(10)).await,
                other => return other,
            }
        }
    }

    async fn call_done(&self, p: &HoardPath, request: Request) -> ClientResult<()> {
        match self.call_coordinator(p, request, Payload::default()).await?.message {
            Response::Done => Ok(()),
            other => Err(unexpected(p, &other)),
        }
    }
}

/// A file being written. Bytes are buffered up to the coordinator's request size and sent with
/// a few requests in flight; [`Writer::flush`] makes them durable (and visible), and
/// [`Writer::close`] finishes the file. Dropping a writer without closing it abandons the
/// bytes not yet flushed (the coordinator forgets an idle session after a while).
#[derive(Debug)]
pub struct Writer {
    client: Client,
    path: HoardPath,
    handle: u64,
    max_write: usize,
    buf: BytesMut,
    /// Bytes handed to requests so far.
    sent: u64,
    in_flight: VecDeque<JoinHandle<ClientResult<()>>>,
    finished: bool,
}

impl Writer {
    /// Bytes written so far (sent or buffered).
    pub fn written(&self) -> u64 {
        self.sent + self.buf.len() as u64
    }

    /// The path being written.
    pub fn path(&self) -> String {
        self.path.to_string()
    }

    /// Write bytes (copied into the writer's buffer).
    ///
    /// # Errors
    /// The error of an earlier request that failed; the writer is then unusable: abort it.
    pub async fn write(&mut self, mut data: &[u8]) -> ClientResult<()> {
        while !data.is_empty() {
            let room = self.max_write - self.buf.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.buf.extend_from_slice(now);
            data = rest;
            if self.buf.len() == self.max_write {
                let full = self.buf.split().freeze();
                self.send(full).await?;
            }
        }
        Ok(())
    }

    /// Write owned bytes; large ones are sent without copying.
    ///
    /// # Errors
    /// As [`Writer::write`].
    pub async fn write_bytes(&mut self, mut data: Bytes) -> ClientResult<()> {
        if !self.buf.is_empty() || data.len() < self.max_write {
            let take = (self.max_write - self.buf.len()).min(data.len());
            self.write(&data.split_to(take)).await?;
        }
        while data.len() >= self.max_write {
            let piece = data.split_to(self.max_write);
            self.send(piece).await?;
        }
        self.write(&data).await
    }

    /// Send one piece, keeping at most [`WRITES_IN_FLIGHT`] requests outstanding.
    async fn send(&mut self, piece: Bytes) -> ClientResult<()> {
        while self.in_flight.len() >= WRITES_IN_FLIGHT {
            self.wait_oldest().await?;
        }
        let request = Request::WriteData(WriteDataRequest {
            handle: self.handle,
            offset: self.sent,
        });
        self.sent += piece.len() as u64;
        let (client, path) = (self.client.clone(), self.path.clone());
        self.in_flight.push_back(tokio::spawn(async move {
            match client
                .call_coordinator(&path, request, Payload::single(piece))
                .await?
                .message
            {
                Response::Written(_) => Ok(()),
                other => Err(unexpected(&path, &other)),
            }
        }));
        Ok(())
    }

    async fn wait_oldest(&mut self) -> ClientResult<()> {
        let Some(task) = self.in_flight.pop_front() else {
            return Ok(());
        };
        task.await.map_err(|e| ClientError::Worker {
            status: Status::Internal,
            message: format!("write task failed: {e}"),
        })?
    }

    /// Send what is buffered and wait for every request.
    async fn drain(&mut self) -> ClientResult<()> {
        if !self.buf.is_empty() {
            let rest = self.buf.split().freeze();
            self.send(rest).await?;
        }
        while !self.in_flight.is_empty() {
            self.wait_oldest().await?;
        }
        Ok(())
    }

    /// Make every byte written so far durable and visible: in `back` and `cache-only` mode it is
    /// in the coordinator's journal on disk (fsync'd) and readers see it. In `through` mode an
    /// appending writer's bytes are uploaded and visible when this returns; a creating writer's
    /// become durable and visible only at [`Writer::close`] (S3 has no partial objects), so for
    /// it this only waits until the coordinator has them.
    ///
    /// # Errors
    /// As [`Writer::close`].
    pub async fn flush(&mut self) -> ClientResult<()> {
        self.drain().await?;
        let request = Request::WriteFlush(WriteSyncRequest {
            handle: self.handle,
            len: self.sent,
            content: Vec::new(),
        });
        match self
            .client
            .call_coordinator(&self.path, request, Payload::default())
            .await?
            .message
        {
            Response::Done => Ok(()),
            other => Err(unexpected(&self.path, &other)),
        }
    }

    /// Finish the file: when this returns it is durable (`through`: in the under-store; `back`:
    /// in the journal) and every client sees it.
    ///
    /// # Errors
    /// [`ClientError::Worker`] with the coordinator's status ([`Status::NoSpace`], an
    /// under-store failure in `through` mode, [`Status::NoSuchSession`] when the coordinator
    /// restarted mid-write), or [`ClientError::Unavailable`]. Nothing of a failed close is
    /// visible, except bytes an earlier [`Writer::flush`] made durable.
    pub async fn close(self) -> ClientResult<FileMeta> {
        self.close_with(Vec::new()).await
    }

    /// [`Writer::close`], and set metadata that describes the bytes on the file with them: keys
    /// for which [`hoard_transport::wire::is_content_bound`] holds (the S3 ETag the gateway
    /// computed, a checksum). They stay with these bytes in hoard (a later write or append drops
    /// them) and are never written to the under-store, whose object gets its own ETag.
    ///
    /// # Errors
    /// As [`Writer::close`]; [`ClientError::Worker`] with [`Status::InvalidArgument`] for an
    /// appending writer or a key that is not content-bound.
    pub async fn close_with(mut self, content: Vec<(String, String)>) -> ClientResult<FileMeta> {
        self.drain().await?;
        let request = Request::WriteCommit(WriteSyncRequest {
            handle: self.handle,
            len: self.sent,
            content,
        });
        self.finished = true;
        match self
            .client
            .call_coordinator(&self.path, request, Payload::default())
            .await?
            .message
        {
            Response::Committed(meta) => Ok(meta),
            other => Err(unexpected(&self.path, &other)),
        }
    }

    /// Abandon the file: bytes not flushed are dropped and the path keeps what it had.
    ///
    /// # Errors
    /// [`ClientError::Unavailable`] when the coordinator cannot be told (it forgets the session
    /// by itself later).
    pub async fn abort(mut self) -> ClientResult<()> {
        self.finished = true;
        for task in self.in_flight.drain(..) {
            task.abort();
        }
        let request = Request::WriteAbort(self.handle);
        self.client
            .call_coordinator(&self.path, request, Payload::default())
            .await
            .map(drop)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Tell the coordinator now rather than leave the session to its idle timeout.
        let (client, path, handle) = (self.client.clone(), self.path.clone(), self.handle);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = client
                    .call_coordinator(&path, Request::WriteAbort(handle), Payload::default())
                    .await;
            });
        }
    }
}

/// A path that names a file or directory (not a mount's root), without a trailing `/`.
fn file_path(path: &str) -> ClientResult<HoardPath> {
    let mut p = HoardPath::parse(path)?;
    while p.key.ends_with('/') {
        p.key.pop();
    }
    if p.key.is_empty() {
        return Err(ClientError::InvalidPath {
            path: path.to_owned(),
            reason: "names a mount, not a file or directory in it",
        });
    }
    Ok(p)
}

/// The client error for a coordinator's error reply.
fn write_error(p: &HoardPath, status: Status, message: String) -> ClientError {
    match status {
        Status::NotFound => ClientError::NotFound { path: p.to_string() },
        Status::AlreadyExists => ClientError::AlreadyExists { path: p.to_string() },
        status => ClientError::Worker { status, message },
    }
}

fn unexpected(p: &HoardPath, message: &Response) -> ClientError {
    ClientError::Worker {
        status: Status::Internal,
        message: format!("{p}: unexpected reply {:?}", message.kind()),
    }
}
