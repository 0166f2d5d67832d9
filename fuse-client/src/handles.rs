//! Open files: what each file handle reads from or writes to.
//!
//! A handle opened for reading holds one [`OpenFile`]: every read of the handle sees the version
//! of the file that was current at `open`. A handle opened for writing holds a [`WriteHandle`],
//! which maps POSIX writes onto hoard's write API: a file is written from its start (create,
//! `O_TRUNC`, truncate to 0) or at its end (`O_APPEND`, or a write at the current size), never in
//! its middle. The hoard [`Writer`] is opened lazily, at the first write, so an open that never
//! writes changes nothing, and `O_TRUNC`/create without a write publishes an empty file at close.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::atomic::AtomicBool;

use fuser::Errno;
use hoard_client::{Client, CreateOptions, Metadata, OpenFile, Writer};
use parking_lot::Mutex;

use crate::errno::{Op, errno};
use crate::posix::Posix;

/// One open file.
#[derive(Debug)]
pub struct FileHandle {
    /// Its inode.
    pub ino: u64,
    /// Its hoard path when it was opened.
    pub path: String,
    /// The process that opened it (its thread-group id when known).
    pub open_pid: u32,
    /// The version being read, set at open (read handles) or at the first read.
    pub reader: ReadSide,
    /// The write side, for handles opened for writing.
    pub writer: Option<tokio::sync::Mutex<WriteHandle>>,
    /// The file's size as this handle sees it (what `getattr` reports while a write is open).
    pub size: AtomicU64,
    /// Mode, owner and times of the file this handle writes, for its next publish.
    pub attrs: PendingAttrs,
}

/// The file a handle reads, and the path it was opened at. A rename through this mount moves
/// an open file (POSIX keeps it open under its new name); once the old name is gone from hoard,
/// the handle reopens the file at its inode's new path and reads on from there.
#[derive(Debug, Default)]
pub struct ReadSide(Mutex<Option<(String, Arc<OpenFile>)>>);

impl ReadSide {
    /// The file being read and its path, once set.
    pub fn get(&self) -> Option<(String, Arc<OpenFile>)> {
        self.0.lock().clone()
    }

    /// Sets the file read from now on, unless a concurrent first read set one already (which
    /// wins); returns the one in place.
    pub fn init(&self, path: String, file: OpenFile) -> (String, Arc<OpenFile>) {
        self.0.lock().get_or_insert_with(|| (path, Arc::new(file))).clone()
    }

    /// The file, moved to `path`, is read from there from now on.
    pub fn moved(&self, path: String, file: OpenFile) -> Arc<OpenFile> {
        let file = Arc::new(file);
        *self.0.lock() = Some((path, file.clone()));
        file
    }
}

/// The POSIX attributes a write handle's file gets when it is published: those of the create
/// (or of the file it replaces), changed by `chmod`/`chown`/`utimens` while it is open.
#[derive(Debug, Default)]
pub struct PendingAttrs {
    /// The file's metadata as the handle knows it (other keys than the POSIX ones included).
    metadata: Mutex<Metadata>,
    /// Changed since the file was last published: a publish that is not a create must set
    /// them afterwards.
    changed: AtomicBool,
    /// The metadata holds a modification time a tool set, which the first write makes stale.
    stale_mtime: AtomicBool,
}

impl PendingAttrs {
    /// Attributes starting from `metadata`.
    pub fn new(metadata: Metadata) -> PendingAttrs {
        PendingAttrs {
            stale_mtime: AtomicBool::new(metadata.contains_key(crate::posix::MTIME)),
            metadata: Mutex::new(metadata),
            changed: AtomicBool::new(false),
        }
    }

    /// Bytes are being written: a modification time set before is no longer the file's (the
    /// object's own time shows again, unless a tool sets one later).
    pub fn on_write(&self) {
        if self.stale_mtime.swap(false, Ordering::AcqRel) {
            self.metadata.lock().remove(crate::posix::MTIME);
            self.changed.store(true, Ordering::Release);
        }
    }

    /// The attributes as they are now.
    pub fn posix(&self) -> Posix {
        let pairs: Vec<(String, String)> = self
            .metadata
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Posix::from_pairs(&pairs)
    }

    /// Change them (a `setattr` while the handle is open).
    pub fn update(&self, change: Posix) {
        if change.mtime.is_some() {
            self.stale_mtime.store(false, Ordering::Release);
        }
        let mut m = self.metadata.lock();
        let pairs: Vec<(String, String)> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        *m = Posix::from_pairs(&pairs).updated(change).merged_into(&pairs);
        self.changed.store(true, Ordering::Release);
    }

    /// The metadata a create publishes, which carries every change so far.
    pub fn for_create(&self) -> Metadata {
        self.changed.store(false, Ordering::Release);
        self.metadata.lock().clone()
    }

    /// Changes that could not be set yet stay pending for the next publish.
    pub fn still_changed(&self) {
        self.changed.store(true, Ordering::Release);
    }

    /// The metadata to set after a publish that was not a create, if anything changed.
    pub fn take_changed(&self) -> Option<Metadata> {
        self.changed
            .swap(false, Ordering::AcqRel)
            .then(|| self.metadata.lock().clone())
    }
}

impl FileHandle {
    /// A handle on `path` (inode `ino`), with a write side when `writer` is given.
    pub fn new(ino: u64, path: String, open_pid: u32, writer: Option<WriteHandle>) -> FileHandle {
        let size = writer.as_ref().map_or(0, |w| w.size);
        FileHandle {
            ino,
            path,
            open_pid,
            reader: ReadSide::default(),
            writer: writer.map(tokio::sync::Mutex::new),
            size: AtomicU64::new(size),
            attrs: PendingAttrs::default(),
        }
    }

    /// This handle, publishing its file with the attributes in `metadata`.
    pub fn with_attrs(mut self, metadata: Metadata) -> FileHandle {
        self.attrs = PendingAttrs::new(metadata);
        self
    }
}

/// The open file handles, by number.
#[derive(Debug, Default)]
pub struct Handles {
    map: Mutex<HashMap<u64, Arc<FileHandle>>>,
    next: AtomicU64,
}

impl Handles {
    /// Register a handle; its number.
    pub fn insert(&self, handle: FileHandle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.map.lock().insert(fh, Arc::new(handle));
        fh
    }

    /// Handle `fh`.
    pub fn get(&self, fh: u64) -> Option<Arc<FileHandle>> {
        self.map.lock().get(&fh).cloned()
    }

    /// Forget handle `fh`.
    pub fn remove(&self, fh: u64) -> Option<Arc<FileHandle>> {
        self.map.lock().remove(&fh)
    }

    /// The size and attributes of inode `ino` as its open write handles see it (the largest
    /// size), if it has any.
    pub fn writing(&self, ino: u64) -> Option<(u64, Posix)> {
        self.map
            .lock()
            .values()
            .filter(|h| h.ino == ino && h.writer.is_some())
            .map(|h| (h.size.load(Ordering::Acquire), h.attrs.posix()))
            .max_by_key(|(size, _)| *size)
    }

    /// The open handles of inode `ino`.
    pub fn of_inode(&self, ino: u64) -> Vec<Arc<FileHandle>> {
        self.map.lock().values().filter(|h| h.ino == ino).cloned().collect()
    }

    /// Open handles.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }
}

/// The write side of a handle.
#[derive(Debug)]
pub struct WriteHandle {
    state: WriteState,
    /// The file's size as this handle sees it: where the next sequential write goes.
    pub size: u64,
    /// The file must become empty at the next commit even if nothing is written (create,
    /// `O_TRUNC`, truncate to 0).
    pending_create: bool,
    /// `O_APPEND`: every write goes to the end, whatever its offset.
    append: bool,
    /// `O_EXCL`: the create fails if the path exists when the file is published.
    exclusive: bool,
}

#[derive(Debug)]
enum WriteState {
    /// No hoard writer open: the file is as it was (or empty, with `pending_create`).
    Idle,
    /// A hoard writer is open; it started at byte `base` of the file (0 unless appending).
    Open { writer: Writer, base: u64 },
    /// A hoard call failed; the handle refuses everything with this errno.
    Failed(Errno),
    /// The file was unlinked: writes fail with `ESTALE`, closing publishes nothing.
    Orphaned,
}

/// What a write at an offset needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePlan {
    /// Send it to the open writer.
    Write,
    /// Open a writer that replaces the file, then send it.
    Create,
    /// Open a writer that appends to the file, then send it.
    Append,
    /// Not sequential: refuse (`ENOTSUP`).
    Refuse,
}

/// How a write at `offset` is served, given whether a writer is open, the file's `size` as the
/// handle sees it, whether the file must be replaced (`pending_create`) and `O_APPEND`.
pub fn plan_write(open: bool, size: u64, pending_create: bool, append: bool, offset: u64) -> WritePlan {
    match (open, append) {
        (true, true) => WritePlan::Write,
        (true, false) if offset == size => WritePlan::Write,
        (true, false) => WritePlan::Refuse,
        (false, true) => WritePlan::Append,
        (false, false) if offset == 0 && (pending_create || size == 0) => WritePlan::Create,
        (false, false) if offset == size => WritePlan::Append,
        (false, false) => WritePlan::Refuse,
    }
}

impl WriteHandle {
    /// The write side of a handle on a file of `size` bytes; `truncate` (create, `O_TRUNC`)
    /// makes it empty.
    pub fn new(size: u64, truncate: bool, append: bool, exclusive: bool) -> WriteHandle {
        WriteHandle {
            state: WriteState::Idle,
            size: if truncate { 0 } else { size },
            pending_create: truncate,
            append,
            exclusive,
        }
    }

    /// Whether bytes were written that are not yet published (reads cannot see them).
    pub fn has_unpublished_bytes(&self) -> bool {
        matches!(self.state, WriteState::Open { .. })
    }

    /// Whether a commit has something to publish (written bytes, or a replaced file).
    pub fn needs_commit(&self) -> bool {
        match self.state {
            WriteState::Open { .. } => true,
            WriteState::Idle => self.pending_create,
            WriteState::Failed(_) | WriteState::Orphaned => false,
        }
    }

    /// Whether the handle sees the file as empty and replaced (nothing to read).
    pub fn truncated(&self) -> bool {
        self.pending_create
    }

    /// Write `data` at `offset`; the file's new size as the handle sees it.
    ///
    /// # Errors
    /// `ENOTSUP` for a write that is neither at the start of a replaced file nor at its end;
    /// the client's error otherwise (the handle then fails every later call).
    pub async fn write(
        &mut self,
        client: &Client,
        path: &str,
        attrs: &PendingAttrs,
        offset: u64,
        data: &[u8],
    ) -> Result<u64, Errno> {
        match self.state {
            WriteState::Failed(e) => return Err(e),
            WriteState::Orphaned => return Err(Errno::ESTALE),
            _ => {}
        }
        let open = matches!(self.state, WriteState::Open { .. });
        match plan_write(open, self.size, self.pending_create, self.append, offset) {
            WritePlan::Refuse => {
                tracing::debug!(
                    path,
                    offset,
                    size = self.size,
                    "refusing a write that is not sequential"
                );
                return Err(Errno::ENOTSUP);
            }
            WritePlan::Create => {
                let options = CreateOptions {
                    exclusive: self.exclusive,
                    append: false,
                    metadata: attrs.for_create(),
                };
                let writer = self.checked(client.create(path, options).await, Op::WriteFile)?;
                self.state = WriteState::Open { writer, base: 0 };
                self.pending_create = false;
            }
            WritePlan::Append => {
                let writer = self.checked(client.open_append(path).await, Op::WriteFile)?;
                self.state = WriteState::Open {
                    writer,
                    base: self.size,
                };
            }
            WritePlan::Write => {}
        }
        let WriteState::Open { writer, base } = &mut self.state else {
            unreachable!("a writer was opened above");
        };
        let result = writer.write(data).await;
        let end = *base + writer.written();
        self.checked(result, Op::WriteFile)?;
        self.size = end;
        Ok(end)
    }

    /// Publish what was written (close the writer) or, for a file replaced and never written,
    /// publish it empty. The handle stays usable: a later write at the end appends.
    ///
    /// # Errors
    /// The client's error; the handle then fails every later call.
    pub async fn commit(&mut self, client: &Client, path: &str, attrs: &PendingAttrs) -> Result<(), Errno> {
        match std::mem::replace(&mut self.state, WriteState::Idle) {
            WriteState::Failed(e) => {
                self.state = WriteState::Failed(e);
                Err(e)
            }
            WriteState::Orphaned => {
                self.state = WriteState::Orphaned;
                Ok(())
            }
            WriteState::Open { writer, .. } => {
                let meta = self.checked(writer.close().await, Op::WriteFile)?;
                self.size = meta.size;
                self.pending_create = false;
                Ok(())
            }
            WriteState::Idle if self.pending_create => {
                let options = CreateOptions {
                    exclusive: self.exclusive,
                    append: false,
                    metadata: attrs.for_create(),
                };
                let writer = self.checked(client.create(path, options).await, Op::WriteFile)?;
                self.checked(writer.close().await, Op::WriteFile)?;
                self.pending_create = false;
                Ok(())
            }
            WriteState::Idle => Ok(()),
        }
    }

    /// Make what was written durable (`fsync`, or a `close` in another process than the
    /// writer's) without ending the writer.
    ///
    /// # Errors
    /// As [`WriteHandle::commit`].
    pub async fn sync(&mut self, client: &Client, path: &str, attrs: &PendingAttrs) -> Result<(), Errno> {
        match &mut self.state {
            WriteState::Failed(e) => Err(*e),
            WriteState::Orphaned => Ok(()),
            WriteState::Open { writer, .. } => {
                let result = writer.flush().await;
                self.checked(result, Op::WriteFile)
            }
            WriteState::Idle => self.commit(client, path, attrs).await,
        }
    }

    /// Truncate to zero: drop what is being written; the file is replaced (empty unless written
    /// again) at the next commit.
    pub fn truncate(&mut self) {
        if let WriteState::Open { writer, .. } = std::mem::replace(&mut self.state, WriteState::Idle) {
            // Dropping an unfinished writer aborts its session.
            drop(writer);
        }
        self.size = 0;
        self.pending_create = true;
    }

    /// The file was unlinked: drop what is being written, so that closing the handle does not
    /// bring the file back. Later writes fail with `ESTALE` (hoard cannot keep an unlinked
    /// file's bytes for the handle, as a local file system would); closing succeeds.
    pub fn orphan(&mut self) {
        self.state = WriteState::Orphaned;
        self.pending_create = false;
    }

    /// Drop the writer, without publishing (the handle is going away unused, or failed).
    pub fn abandon(&mut self) {
        self.state = WriteState::Failed(Errno::EBADF);
    }

    /// `result`'s value, or its errno with the handle marked failed.
    fn checked<T>(&mut self, result: hoard_client::ClientResult<T>, op: Op) -> Result<T, Errno> {
        result.map_err(|e| {
            let code = errno(&e, op);
            tracing::debug!("write failed: {e}");
            self.state = WriteState::Failed(code);
            code
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WritePlan::*;

    #[test]
    fn sequential_writes_are_planned_and_others_refused() {
        // A new or truncated file: the first write must be at 0, the rest follow.
        assert_eq!(plan_write(false, 0, true, false, 0), Create);
        assert_eq!(plan_write(false, 0, true, false, 4096), Refuse);
        assert_eq!(plan_write(true, 4096, false, false, 4096), Write);
        assert_eq!(plan_write(true, 4096, false, false, 0), Refuse, "no rewrite");
        assert_eq!(plan_write(true, 4096, false, false, 8192), Refuse, "no hole");
        // An existing file opened without O_TRUNC: only its end may be written.
        assert_eq!(plan_write(false, 100, false, false, 100), Append);
        assert_eq!(plan_write(false, 100, false, false, 0), Refuse);
        assert_eq!(plan_write(false, 100, false, false, 50), Refuse);
        assert_eq!(
            plan_write(false, 0, false, false, 0),
            Create,
            "an empty file is replaced"
        );
        // O_APPEND: the offset does not matter.
        assert_eq!(plan_write(false, 100, false, true, 7), Append);
        assert_eq!(plan_write(true, 100, false, true, 7), Write);
    }

    #[test]
    fn a_truncated_handle_replaces_the_file() {
        let mut w = WriteHandle::new(500, false, false, false);
        assert_eq!((w.size, w.truncated(), w.has_unpublished_bytes()), (500, false, false));
        assert!(!w.needs_commit(), "opened and not written: nothing to publish");
        w.truncate();
        assert_eq!((w.size, w.truncated()), (0, true));
        assert!(w.needs_commit(), "a truncated file is published empty");
        w.abandon();
        assert!(!w.needs_commit());
        let mut unlinked = WriteHandle::new(0, true, false, false);
        unlinked.orphan();
        assert!(
            !unlinked.needs_commit(),
            "an unlinked file is not brought back at close"
        );
        let t = WriteHandle::new(500, true, false, true);
        assert_eq!((t.size, t.truncated()), (0, true));
    }

    #[test]
    fn handles_report_the_size_of_files_being_written() {
        let handles = Handles::default();
        let a = handles.insert(FileHandle::new(
            7,
            "/m/a".into(),
            1,
            Some(WriteHandle::new(10, false, true, false)),
        ));
        let b = handles.insert(FileHandle::new(7, "/m/a".into(), 1, None));
        assert_ne!(a, b);
        assert_eq!(handles.writing(7).map(|w| w.0), Some(10));
        assert!(handles.writing(8).is_none());
        handles.get(a).expect("open").size.store(30, Ordering::Release);
        assert_eq!(handles.writing(7).map(|w| w.0), Some(30));
        assert!(handles.remove(a).is_some());
        assert!(handles.writing(7).is_none(), "a read handle is not a writer");
        assert_eq!(handles.of_inode(7).len(), 1);
        assert_eq!(handles.len(), 1);
    }
}
