//! The write path of a mount's coordinator: write sessions, the namespace overlay, the journal
//! and the persister that applies the overlay to the under-store.
//!
//! - A **session** streams a file's bytes into a journal blob (`pwrite`, any order). A flush or
//!   commit *publishes* them: the blob is fsync'd, the file's new entry is logged (fsync'd) and
//!   set in the overlay, and from then on every client sees it.
//! - **Modes**: `back` publishes dirty entries and the persister uploads them in the background;
//!   `cache-only` entries are never uploaded; `through` creates upload their parts while the
//!   writer writes and publish only once the under-store has the object, and `through` renames,
//!   deletes and mkdirs wait for the persister before they are acknowledged.
//! - **Append** adds a segment (or grows the last blob) after the file's current segments; the old
//!   under-store object stays a segment, so the persister copies it server-side.
//! - **Rename** and **delete** are overlay edits (one journal write), whatever their size: a
//!   renamed under-store object becomes an entry whose bytes are a span of the old key, and the
//!   old key a tombstone; the persister copies, then deletes.
//!
//! The persister runs the oldest dirty entries first, at most `upload_concurrency` at once and
//! one per path, retrying failures with exponential backoff. An under-store path is not
//! overwritten or deleted while another dirty entry still has to copy from it.

mod compose;
mod journal;
mod namespace;
mod persist;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hoard_transport::cluster::{MountEntry, WriteMode};
use hoard_transport::wire::{
    FileKey, FileMeta, LIST_AFTER_TOKEN, ListEntry, ListReply, ListRequest as WireListRequest, Status,
    is_content_bound, is_staged,
};
use hoard_ufs::{CompletedPart, ListItem, ListRequest, Metadata, ObjectMeta, UfsError, UfsResult, UnderStore};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub use journal::{Journal, Record};
pub use namespace::{Entry, EntryKind, EntryState, FileEntry, Namespace, Segment};
pub use persist::{SegmentReader, slice};

use crate::metadata::MetadataCache;
use crate::metrics;
use crate::page_store::{FileId, MemoryPageStore, Page, PageKey};
use crate::read_path::{error_chain, ufs_status};

/// Blobs no entry uses are deleted this long after, so reads that resolved them just before
/// can finish.
const BLOB_GRACE: Duration = Duration::from_secs(30);

/// How long a `sync` request waits before answering `Timeout` (the client asks again).
const SYNC_WAIT: Duration = Duration::from_secs(5);

/// Most parts of one `through` session uploading at once (the writer waits beyond).
const THROUGH_PARTS_IN_FLIGHT: usize = 4;

/// How long a merged listing is reused while the namespace does not change.
const MERGED_LIST_TTL: Duration = Duration::from_secs(5);

/// Merged listings kept per mount.
const MERGED_LISTS_KEPT: usize = 256;

/// Most bytes one write request carries.
pub const MAX_WRITE: u64 = 8 << 20;

/// An error answer of the write path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteError {
    /// Wire status.
    pub status: Status,
    /// What happened.
    pub message: String,
}

impl WriteError {
    fn new(status: Status, message: impl Into<String>) -> Self {
        WriteError {
            status,
            message: message.into(),
        }
    }

    fn io(what: &str, e: &io::Error) -> Self {
        let full = e.kind() == io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28 | 122));
        let status = if full { Status::NoSpace } else { Status::Internal };
        WriteError::new(status, format!("{what}: {e}"))
    }

    fn ufs(e: &UfsError) -> Self {
        WriteError::new(ufs_status(e), error_chain(e))
    }
}

/// Result of a write-path call.
pub type WriteResult<T> = Result<T, WriteError>;

/// Settings of the write path.
#[derive(Debug, Clone)]
pub struct WriteConfig {
    /// Multipart part size.
    pub part_size: u64,
    /// Most persister operations at once.
    pub upload_concurrency: usize,
    /// Longest retry backoff.
    pub upload_retry_max: Duration,
    /// Persisted files whose entries are kept.
    pub written_entries: usize,
    /// Idle sessions are aborted after this long.
    pub session_idle_timeout: Duration,
}

/// One mount as the write path sees it.
#[derive(Debug)]
struct MountWrite {
    name: String,
    mode: WriteMode,
    ufs: Arc<dyn UnderStore>,
    /// This worker is the mount's coordinator (else the mount is here only to finish persisting
    /// what an earlier configuration left in this journal).
    coordinated: bool,
    cache_only_capacity: u64,
    ns: Mutex<Namespace>,
    /// Serializes namespace changes that look at the under-store first (publish, rename, ...).
    op: tokio::sync::Mutex<()>,
    /// Bytes of open sessions (counted against the cache-only capacity).
    session_bytes: AtomicU64,
    /// Bumped on every change of the overlay (invalidates `listings`).
    generation: AtomicU64,
    /// Merged listings: (prefix, delimiter, markers) -> (generation, when, entries).
    listings: Mutex<HashMap<ListingKey, ListingCache>>,
}

type ListingCache = (u64, Instant, Arc<Vec<ListEntry>>);
type ListingKey = (String, Option<String>, bool);

/// Byte ranges received by a session.
#[derive(Debug, Default)]
struct Received(BTreeMap<u64, u64>);

impl Received {
    /// Add `[start, end)`; false if it overlaps what was received.
    fn insert(&mut self, start: u64, end: u64) -> bool {
        if start == end {
            return true;
        }
        if let Some((_, e)) = self.0.range(..end).next_back()
            && *e > start
        {
            return false;
        }
        let mut start = start;
        let mut end = end;
        if let Some((s, e)) = self.0.range(..=start).next_back().map(|(s, e)| (*s, *e))
            && e == start
        {
            self.0.remove(&s);
            start = s;
        }
        if let Some(e) = self.0.remove(&end) {
            end = e;
        }
        self.0.insert(start, end);
        true
    }

    /// End of the contiguous prefix from 0.
    fn contiguous(&self) -> u64 {
        self.0.get(&0).copied().unwrap_or(0)
    }
}

/// A `through` create's multipart upload, fed while the writer writes.
#[derive(Debug, Default)]
struct Streaming {
    upload_id: Option<String>,
    next_start: u64,
    pending: VecDeque<JoinHandle<UfsResult<CompletedPart>>>,
    done: Vec<CompletedPart>,
}

#[derive(Debug)]
struct SessionState {
    received: Received,
    /// Session bytes already part of the file.
    published: u64,
    /// What the last publish made (a close with nothing new answers it).
    last_meta: Option<FileMeta>,
    streaming: Streaming,
    last_used: Instant,
    /// The session was aborted or finished: nothing may be published any more.
    ended: bool,
}

#[derive(Debug)]
struct Session {
    mount: Arc<MountWrite>,
    /// The mount's write mode, or `cache-only` for a staged file.
    mode: WriteMode,
    path: String,
    append: bool,
    exclusive: bool,
    /// User metadata of the new file (unused by appends, which keep the file's).
    metadata: Metadata,
    blob: u64,
    file: Arc<File>,
    state: tokio::sync::Mutex<SessionState>,
    touched: Mutex<Instant>,
}

/// The write path of one worker.
#[derive(Debug)]
pub struct WritePath {
    mounts: HashMap<String, Arc<MountWrite>>,
    /// The page cache, for the pages of `through` writes (a read right after the write hits).
    pages: Option<(Arc<MemoryPageStore>, u64)>,
    journal: Arc<Journal>,
    metadata: Arc<MetadataCache>,
    config: WriteConfig,
    sessions: Mutex<HashMap<u64, Arc<Session>>>,
    next_id: AtomicU64,
    /// Random per start: versions never repeat across restarts.
    epoch: u32,
    wake: Notify,
    progress: Notify,
    running: AtomicUsize,
    /// Entry id -> (failures, next attempt, last error).
    retries: Mutex<HashMap<u64, (u32, Instant, String)>>,
    doomed_blobs: Mutex<Vec<(Instant, u64)>>,
    backlog_reported: Mutex<Instant>,
    /// Multipart uploads left open (by a crash, or an abort that failed): (mount, path, id),
    /// aborted by housekeeping.
    stale_uploads: Mutex<Vec<(String, String, String)>>,
    aborting_stale: std::sync::atomic::AtomicBool,
    /// Multipart uploads running now (kept as open records when the journal is compacted).
    open_uploads: Mutex<std::collections::BTreeSet<(String, String, String)>>,
    /// Held shared while a record is appended and applied, exclusively while compacting.
    journal_gate: parking_lot::RwLock<()>,
    /// Journal records of mounts no longer configured: kept verbatim.
    orphans: Vec<Record>,
}

impl WritePath {
    /// Open the journal in `dir`, replay it into the mounts' overlays and return the write path
    /// (the persister is started by [`WritePath::start`]).
    ///
    /// # Errors
    /// When the journal cannot be opened or compacted.
    pub fn open(
        dir: &Path,
        mounts: &[(MountEntry, Arc<dyn UnderStore>, bool)],
        metadata: Arc<MetadataCache>,
        config: WriteConfig,
    ) -> io::Result<Arc<WritePath>> {
        let (journal, records) = Journal::open(dir)?;
        let journal = Arc::new(journal);
        let mounts: HashMap<String, Arc<MountWrite>> = mounts
            .iter()
            .map(|(m, ufs, coordinated)| {
                let mount = MountWrite {
                    name: m.name.clone(),
                    mode: m.write_mode,
                    ufs: ufs.clone(),
                    coordinated: *coordinated,
                    cache_only_capacity: m.cache_only_capacity.as_u64(),
                    ns: Mutex::new(Namespace::default()),
                    op: tokio::sync::Mutex::new(()),
                    session_bytes: AtomicU64::new(0),
                    generation: AtomicU64::new(0),
                    listings: Mutex::new(HashMap::new()),
                };
                (m.name.clone(), Arc::new(mount))
            })
            .collect();
        let replayed = records.len();
        let mut orphans = Vec::new();
        let mut max_id = 0;
        let mut open_uploads = std::collections::BTreeSet::new();
        for record in records {
            match &record {
                Record::Upload {
                    mount,
                    path,
                    upload_id,
                    open,
                } => {
                    let key = (mount.clone(), path.clone(), upload_id.clone());
                    if *open {
                        open_uploads.insert(key);
                    } else {
                        open_uploads.remove(&key);
                    }
                }
                Record::Set { mount, path, entry } => match mounts.get(mount) {
                    Some(m) => {
                        max_id = max_id.max(entry.id);
                        m.ns.lock().set(path, entry.clone());
                    }
                    None => orphans.push(record),
                },
                Record::Clear { mount, path, id } => match mounts.get(mount) {
                    Some(m) => {
                        let mut ns = m.ns.lock();
                        if ns.get(path).is_some_and(|e| e.id == *id) {
                            ns.remove(path);
                        }
                    }
                    None => orphans.push(record),
                },
            }
        }
        if !orphans.is_empty() {
            tracing::error!(
                records = orphans.len(),
                "the journal holds writes of mounts that are no longer configured: they are kept, not persisted; \
                 add the mounts back to persist them"
            );
        }
        // Blobs of sessions that never published, and of entries since replaced: delete.
        let mut used: std::collections::HashSet<u64> = mounts
            .values()
            .flat_map(|m| m.ns.lock().blobs().collect::<Vec<_>>())
            .collect();
        // Entries of mounts no longer configured keep their blobs and their ids.
        for record in &orphans {
            if let Record::Set { entry, .. } = record {
                max_id = max_id.max(entry.id);
                if let Some(f) = entry.file() {
                    used.extend(f.segments.iter().filter_map(|seg| match seg {
                        Segment::Blob { blob, .. } => Some(*blob),
                        Segment::Ufs { .. } => None,
                    }));
                }
            }
        }
        for id in journal.blob_ids()? {
            max_id = max_id.max(id);
            if !used.contains(&id) {
                journal.remove_blob(id);
            }
        }
        let write = WritePath {
            mounts,
            pages: None,
            journal,
            metadata,
            config,
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(max_id + 1),
            epoch: rand::random(),
            wake: Notify::new(),
            progress: Notify::new(),
            running: AtomicUsize::new(0),
            retries: Mutex::new(HashMap::new()),
            doomed_blobs: Mutex::new(Vec::new()),
            backlog_reported: Mutex::new(Instant::now()),
            stale_uploads: Mutex::new(open_uploads.into_iter().collect()),
            aborting_stale: std::sync::atomic::AtomicBool::new(false),
            open_uploads: Mutex::new(std::collections::BTreeSet::new()),
            journal_gate: parking_lot::RwLock::new(()),
            orphans,
        };
        write.compact()?;
        let (bytes, ops) = write.backlog();
        if replayed > 0 {
            tracing::info!(
                records = replayed,
                backlog_ops = ops,
                backlog_bytes = bytes,
                "journal replayed"
            );
        }
        Ok(Arc::new(write))
    }

    /// Put the pages of files written in `through` mode into this page store (page size
    /// `page_size`), so that reading them right after the write hits.
    pub fn cache_pages_in(mut self: Arc<Self>, store: Arc<MemoryPageStore>, page_size: u64) -> Arc<Self> {
        if let Some(this) = Arc::get_mut(&mut self) {
            this.pages = Some((store, page_size));
        }
        self
    }

    /// Cache the pages of a blob as the pages of a file version (at most a quarter of the
    /// store, so one large write does not flush the cache).
    async fn cache_blob(&self, mount: &str, path: &str, version: &str, blob: u64, len: u64) {
        let Some((store, page_size)) = self.pages.clone() else {
            return;
        };
        if len > store.capacity_bytes() / 4 {
            return;
        }
        let file = FileId::of(&FileKey {
            mount: mount.to_owned(),
            path: path.to_owned(),
            version: version.to_owned(),
        });
        let journal = self.journal.clone();
        let filled = tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut index = 0;
            while index * page_size < len {
                let start = index * page_size;
                let data = persist::read_blob(&journal, blob, start, page_size.min(len - start))?;
                store.insert(PageKey { file, index }, Page::new(data));
                index += 1;
            }
            Ok(())
        })
        .await;
        if let Ok(Err(e)) = filled {
            tracing::warn!(path, "could not cache the pages of a write: {e}");
        }
    }

    /// Start the persister and the session reaper; they stop when `shutdown` is cancelled.
    pub fn start(self: &Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                this.housekeeping();
                this.report_backlog();
                let next = this.start_ready();
                let wait = next.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1));
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = this.wake.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
        });
    }

    /// Rewrite the journal as the live entries.
    fn compact(&self) -> io::Result<()> {
        // No record may be appended between the copy of the overlay and the swap of the log.
        let _gate = self.journal_gate.write();
        let mut records = self.orphans.clone();
        records.extend(
            self.open_uploads
                .lock()
                .iter()
                .map(|(mount, path, upload_id)| Record::Upload {
                    mount: mount.clone(),
                    path: path.clone(),
                    upload_id: upload_id.clone(),
                    open: true,
                }),
        );
        records.extend(
            self.stale_uploads
                .lock()
                .iter()
                .map(|(mount, path, upload_id)| Record::Upload {
                    mount: mount.clone(),
                    path: path.clone(),
                    upload_id: upload_id.clone(),
                    open: true,
                }),
        );
        for m in self.mounts.values() {
            let ns = m.ns.lock();
            records.extend(ns.durable().map(|(path, entry)| Record::Set {
                mount: m.name.clone(),
                path: path.clone(),
                entry: entry.clone(),
            }));
        }
        self.journal.compact(&records)
    }

    fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn version(&self, id: u64) -> String {
        format!("hoard:{:08x}-{id:x}", self.epoch)
    }

    /// The mount if this worker coordinates it.
    fn coordinated(&self, mount: &str) -> WriteResult<&Arc<MountWrite>> {
        match self.mounts.get(mount) {
            Some(m) if m.coordinated => Ok(m),
            Some(_) => Err(WriteError::new(
                Status::NotCoordinator,
                format!(
                    "this worker is not the coordinator of mount `{mount}` (do the client and worker read the same cluster config?)"
                ),
            )),
            None => Err(WriteError::new(
                Status::InvalidArgument,
                format!("no mount named `{mount}`"),
            )),
        }
    }

    /// (backlog bytes, backlog operations) over every mount.
    pub fn backlog(&self) -> (u64, u64) {
        self.mounts.values().fold((0, 0), |(b, o), m| {
            let ns = m.ns.lock();
            (b + ns.dirty_bytes(), o + ns.dirty_len() as u64)
        })
    }

    /// Bytes of cache-only files over every mount.
    pub fn cache_only_bytes(&self) -> u64 {
        self.mounts.values().map(|m| m.ns.lock().cache_only_bytes()).sum()
    }

    // ---- reads and metadata -------------------------------------------------------------

    /// The overlay's answer for a stat: `None` when the overlay has nothing at the path.
    pub fn stat(&self, mount: &str, path: &str) -> Option<Option<FileMeta>> {
        let m = self.coordinated(mount).ok()?;
        let ns = m.ns.lock();
        let entry = ns.get(path)?;
        Some(entry.file().map(|f| file_meta(path, f)))
    }

    /// Whether the overlay holds this file version.
    pub fn holds(&self, mount: &str, path: &str, version: &str) -> bool {
        self.segments(mount, path, version).is_some()
    }

    fn segments(&self, mount: &str, path: &str, version: &str) -> Option<(Vec<Segment>, SegmentReader)> {
        let m = self.coordinated(mount).ok()?;
        let ns = m.ns.lock();
        let file = ns.get(path)?.file().filter(|f| f.version == version)?;
        Some((
            file.segments.clone(),
            SegmentReader {
                journal: self.journal.clone(),
                ufs: m.ufs.clone(),
            },
        ))
    }

    /// Bytes `[start, end)` of a file version the overlay holds. The version's bytes never
    /// change, but where they live does (a blob, then the uploaded object): a read that meets
    /// a just-replaced object resolves the segments again.
    ///
    /// # Errors
    /// `VersionMismatch` when the overlay no longer holds the version; the store's errors.
    pub async fn read(&self, mount: &str, path: &str, version: &str, start: u64, end: u64) -> UfsResult<Bytes> {
        let mut attempt = 0;
        loop {
            let progress = self.progress.notified();
            let Some((segments, reader)) = self.segments(mount, path, version) else {
                return Err(UfsError::VersionMismatch {
                    path: path.to_owned(),
                    expected: version.to_owned(),
                });
            };
            match reader.read(&slice(&segments, start, end)).await {
                // The upload that replaced the object has not updated the overlay yet: it will
                // as soon as its job finishes.
                Err(UfsError::VersionMismatch { .. } | UfsError::NotFound { .. }) if attempt < 20 => {
                    attempt += 1;
                    let _ = tokio::time::timeout(Duration::from_millis(50), progress).await;
                }
                Err(e @ (UfsError::VersionMismatch { .. } | UfsError::NotFound { .. })) => {
                    // A persisted file changed in the under-store behind hoard's back: forget
                    // the entry, so the next stat shows the under-store's version.
                    self.forget_changed(mount, path, version);
                    return Err(e);
                }
                other => return other,
            }
        }
    }

    /// Drop the clean entry of a file version whose under-store object changed.
    fn forget_changed(&self, mount: &str, path: &str, version: &str) {
        let Ok(m) = self.coordinated(mount) else { return };
        let freed = {
            let mut ns = m.ns.lock();
            let clean = ns
                .get(path)
                .is_some_and(|e| e.state == EntryState::Clean && e.file().is_some_and(|f| f.version == version));
            if !clean {
                return;
            }
            tracing::warn!(
                mount,
                path,
                "a file written through hoard was changed in the under-store: forgetting hoard's version"
            );
            ns.remove(path)
        };
        m.generation.fetch_add(1, Ordering::AcqRel);
        self.metadata.forget_stat(mount, path);
        self.metadata.forget_lists(mount);
        for blob in freed {
            self.doom_blob(blob);
        }
    }

    /// Whether a version tag is one this write path hands out.
    pub fn is_hoard_version(version: &str) -> bool {
        version.starts_with("hoard:")
    }

    /// A listing merged with the overlay, or `None` when the under-store's listing is the
    /// answer. A listing keeps the kind it started with: a continuation of a merged listing
    /// (`after`) stays merged, one of an under-store listing (`ufs_token`) stays plain, and a
    /// new one is merged when the overlay has something under the prefix.
    ///
    /// # Errors
    /// The under-store's listing error.
    pub async fn list(&self, req: &WireListRequest, max_keys: u32) -> Option<WriteResult<ListReply>> {
        let m = self.coordinated(&req.mount).ok()?;
        let after = req
            .continuation
            .as_deref()
            .and_then(|c| c.strip_prefix(LIST_AFTER_TOKEN));
        let ufs_token = req.continuation.is_some() && after.is_none();
        if ufs_token || (after.is_none() && !touches_listed(&m.ns.lock(), &req.prefix)) {
            return None;
        }
        let shape = Shape {
            prefix: &req.prefix,
            delimiter: req.delimiter.as_deref(),
            markers: req.markers,
        };
        Some(self.merged_list(m, shape, after, max_keys).await)
    }

    async fn merged_list(
        &self,
        m: &MountWrite,
        shape: Shape<'_>,
        after: Option<&str>,
        max_keys: u32,
    ) -> WriteResult<ListReply> {
        let all = self.merged_entries(m, shape).await?;
        let from = after.map_or(0, |a| all.partition_point(|e| entry_key(e) <= a));
        let max = if max_keys == 0 { 1000 } else { max_keys as usize };
        let entries: Vec<ListEntry> = all[from..].iter().take(max).cloned().collect();
        let next_continuation = (from + entries.len() < all.len())
            .then(|| entries.last().map(|e| format!("{LIST_AFTER_TOKEN}{}", entry_key(e))))
            .flatten();
        Ok(ListReply {
            entries,
            next_continuation,
        })
    }

    /// Every entry of a merged listing, in key order; cached until the namespace changes (or
    /// for [`MERGED_LIST_TTL`], for changes made behind hoard's back).
    async fn merged_entries(&self, m: &MountWrite, shape: Shape<'_>) -> WriteResult<Arc<Vec<ListEntry>>> {
        let key = (
            shape.prefix.to_owned(),
            shape.delimiter.map(str::to_owned),
            shape.markers,
        );
        let generation = m.generation.load(Ordering::Acquire);
        if let Some((g, at, entries)) = m.listings.lock().get(&key)
            && *g == generation
            && at.elapsed() < MERGED_LIST_TTL
        {
            return Ok(entries.clone());
        }
        let entries = self.merge_once(m, shape).await?;
        let mut listings = m.listings.lock();
        if listings.len() >= MERGED_LISTS_KEPT {
            listings.clear();
        }
        listings.insert(key, (generation, Instant::now(), entries.clone()));
        Ok(entries)
    }

    /// One merged listing: the overlay's entries under the prefix are taken *before* the
    /// under-store is listed, so an object the persister deletes meanwhile is still hidden by
    /// its tombstone (and one it creates shows from the overlay).
    async fn merge_once(&self, m: &MountWrite, shape: Shape<'_>) -> WriteResult<Arc<Vec<ListEntry>>> {
        let Shape {
            prefix,
            delimiter,
            markers,
        } = shape;
        let snapshot: BTreeMap<String, Entry> = {
            let ns = m.ns.lock();
            ns.under(prefix).map(|(k, e)| (k.clone(), e.clone())).collect()
        };
        let under = |p: &str| {
            snapshot
                .range::<str, _>((std::ops::Bound::Included(p), std::ops::Bound::Unbounded))
                .take_while(move |(k, _)| k.starts_with(p))
                .map(|(_, e)| e.exists())
                .collect::<Vec<bool>>()
        };
        let ufs_items = list_all(m.ufs.as_ref(), prefix, delimiter)
            .await
            .map_err(|e| WriteError::ufs(&e))?;
        let mut merged: BTreeMap<String, ListEntry> = BTreeMap::new();
        let mut hidden_prefixes = Vec::new();
        for item in ufs_items {
            match item {
                ListItem::Object(o) if hidden_marker(&o.path, prefix, markers) => {}
                ListItem::Object(o) if hidden_staged(&o.path, prefix) => {}
                ListItem::Prefix(p) if hidden_staged(&p, prefix) => {}
                ListItem::Object(o) => {
                    if !snapshot.contains_key(&o.path) {
                        merged.insert(o.path.clone(), ListEntry::File(ufs_meta(o)));
                    }
                }
                ListItem::Prefix(p) => {
                    let entries = under(&p);
                    if !entries.is_empty() && !entries.iter().any(|live| *live) {
                        hidden_prefixes.push(p);
                    } else {
                        merged.insert(p.clone(), ListEntry::Prefix(p));
                    }
                }
            }
        }
        for (key, entry) in &snapshot {
            if !entry.exists() || hidden_staged(key, prefix) {
                continue;
            }
            let rest = &key[prefix.len()..];
            if (rest.is_empty() || (markers && delimiter.is_none())) && matches!(entry.kind, EntryKind::Dir) {
                merged.insert(key.clone(), ListEntry::File(marker_meta(key)));
                continue;
            }
            if let Some(d) = delimiter
                && let Some(at) = rest.find(d)
            {
                let p = format!("{prefix}{}", &rest[..at + d.len()]);
                if p != prefix {
                    merged.insert(p.clone(), ListEntry::Prefix(p));
                }
                continue;
            }
            if let Some(f) = entry.file() {
                merged.insert(key.clone(), ListEntry::File(file_meta(key, f)));
            }
        }
        // A directory whose every under-store object has a tombstone shows only if something
        // in it survives.
        for p in hidden_prefixes {
            let objects = list_all(m.ufs.as_ref(), &p, None)
                .await
                .map_err(|e| WriteError::ufs(&e))?;
            if objects
                .iter()
                .any(|o| snapshot.get(list_key(o)).is_none_or(Entry::exists))
            {
                merged.insert(p.clone(), ListEntry::Prefix(p));
            }
        }
        Ok(Arc::new(merged.into_values().collect::<Vec<_>>()))
    }

    // ---- sessions -------------------------------------------------------------------------

    /// Open a write session.
    ///
    /// # Errors
    /// `NotCoordinator`, `AlreadyExists` (exclusive create of an existing path), a journal
    /// I/O error.
    pub async fn open_session(
        &self,
        mount: &str,
        path: &str,
        append: bool,
        exclusive: bool,
        metadata: Metadata,
    ) -> WriteResult<(u64, u64)> {
        let m = self.coordinated(mount)?.clone();
        validate_path(path)?;
        hoard_ufs::validate_metadata(path, &metadata).map_err(|e| WriteError::ufs(&e))?;
        // What describes the bytes comes with the commit, never from a writer's open (a mount
        // that keeps a replaced file's metadata would carry its old ETag over).
        let mut metadata = metadata;
        metadata.retain(|k, _| !is_content_bound(k));
        let mode = mode_of(&m, path);
        match self.is_dir(&m, path).await {
            Ok(true) => {
                return Err(WriteError::new(
                    Status::NotADirectory,
                    format!("/{mount}/{path} is a directory"),
                ));
            }
            Ok(false) => {}
            // In `back` and `cache-only` mode a write must not depend on the under-store being up.
            Err(e) if mode != WriteMode::Through => {
                tracing::debug!(
                    mount,
                    path,
                    "could not check for a directory of that name: {}",
                    e.message
                );
            }
            Err(e) => return Err(e),
        }
        if exclusive && !append && self.exists(&m, path).await? {
            return Err(WriteError::new(
                Status::AlreadyExists,
                format!("/{mount}/{path} exists"),
            ));
        }
        let base_size = if append { self.current_size(&m, path).await? } else { 0 };
        let id = self.new_id();
        let file = self
            .journal
            .create_blob(id)
            .map_err(|e| WriteError::io("create a journal blob", &e))?;
        let session = Session {
            mount: m,
            mode,
            path: path.to_owned(),
            append,
            exclusive,
            metadata,
            blob: id,
            file: Arc::new(file),
            state: tokio::sync::Mutex::new(SessionState {
                received: Received::default(),
                published: 0,
                last_meta: None,
                streaming: Streaming::default(),
                last_used: Instant::now(),
                ended: false,
            }),
            touched: Mutex::new(Instant::now()),
        };
        self.sessions.lock().insert(id, Arc::new(session));
        ::metrics::gauge!(metrics::WRITE_SESSIONS).increment(1.0);
        Ok((id, base_size))
    }

    fn session(&self, handle: u64) -> WriteResult<Arc<Session>> {
        let s = self.sessions.lock().get(&handle).cloned().ok_or_else(|| {
            WriteError::new(
                Status::NoSuchSession,
                format!("no write session {handle} (finished, idle too long, or lost with a worker restart)"),
            )
        })?;
        *s.touched.lock() = Instant::now();
        Ok(s)
    }

    /// Bytes of a session at `offset`.
    ///
    /// # Errors
    /// `NoSuchSession`, `NoSpace`, `InvalidArgument` (bytes sent twice), and in `through` mode
    /// the under-store's error for a part.
    pub async fn write(&self, handle: u64, offset: u64, data: Bytes) -> WriteResult<u64> {
        let s = self.session(handle)?;
        let len = data.len() as u64;
        if len > MAX_WRITE {
            return Err(WriteError::new(
                Status::InvalidArgument,
                format!("a write may carry at most {MAX_WRITE} bytes"),
            ));
        }
        let m = &s.mount;
        // Staged files of other mounts count against the same capacity (abandoned multipart
        // uploads cannot fill the journal's disk).
        if s.mode == WriteMode::CacheOnly {
            let used = m.ns.lock().cache_only_bytes() + m.session_bytes.load(Ordering::Relaxed);
            if used + len > m.cache_only_capacity {
                return Err(WriteError::new(
                    Status::NoSpace,
                    format!(
                        "mount `{}` is full: its cache-only capacity is {} bytes and {used} are used; delete files to make room",
                        m.name, m.cache_only_capacity
                    ),
                ));
            }
        }
        let file = s.file.clone();
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            file.write_all_at(&data, offset)
        })
        .await
        .map_err(|e| WriteError::new(Status::Internal, e.to_string()))?
        .map_err(|e| WriteError::io("write to the journal", &e))?;
        let mut state = s.state.lock().await;
        if state.ended {
            return Err(WriteError::new(Status::NoSuchSession, "the write session was aborted"));
        }
        state.last_used = Instant::now();
        if !state.received.insert(offset, offset + len) {
            return Err(WriteError::new(
                Status::InvalidArgument,
                format!("bytes at {offset} were written twice"),
            ));
        }
        m.session_bytes.fetch_add(len, Ordering::Relaxed);
        if s.mode == WriteMode::Through && !s.append {
            self.feed_upload(&s, &mut state).await?;
        }
        Ok(len)
    }

    /// Start uploads of the full parts a `through` session has received; wait while too many
    /// are in flight.
    async fn feed_upload(&self, s: &Session, state: &mut SessionState) -> WriteResult<()> {
        let part = self.config.part_size;
        let ready = state.received.contiguous();
        while ready - state.streaming.next_start >= part {
            if state.streaming.upload_id.is_none() {
                let id = s
                    .mount
                    .ufs
                    .create_multipart_with(&s.path, &s.metadata)
                    .await
                    .map_err(|e| WriteError::ufs(&e))?;
                self.log_upload(&s.mount.name, &s.path, &id, true);
                state.streaming.upload_id = Some(id);
            }
            let start = state.streaming.next_start;
            let number = (start / part) as u32 + 1;
            state.streaming.next_start += part;
            let task = self.upload_part_task(
                s,
                number,
                start,
                part,
                state.streaming.upload_id.clone().unwrap_or_default(),
            );
            state.streaming.pending.push_back(task);
            while state.streaming.pending.len() > THROUGH_PARTS_IN_FLIGHT {
                self.finish_oldest_part(s, state).await?;
            }
        }
        Ok(())
    }

    fn upload_part_task(
        &self,
        s: &Session,
        number: u32,
        start: u64,
        len: u64,
        upload_id: String,
    ) -> JoinHandle<UfsResult<CompletedPart>> {
        let reader = SegmentReader {
            journal: self.journal.clone(),
            ufs: s.mount.ufs.clone(),
        };
        let (path, blob) = (s.path.clone(), s.blob);
        tokio::spawn(async move {
            let data = reader.read(&[Segment::Blob { blob, start, len }]).await?;
            reader.ufs.upload_part(&path, &upload_id, number, data).await
        })
    }

    async fn finish_oldest_part(&self, s: &Session, state: &mut SessionState) -> WriteResult<()> {
        if let Some(task) = state.streaming.pending.pop_front() {
            let done = task
                .await
                .map_err(|e| WriteError::new(Status::Internal, e.to_string()))?
                .map_err(|e| {
                    tracing::warn!(path = %s.path, "a part upload failed: {e}");
                    WriteError::ufs(&e)
                })?;
            state.streaming.done.push(done);
        }
        Ok(())
    }

    /// Make the first `len` bytes of a session durable and visible (`commit` also ends it).
    ///
    /// # Errors
    /// `InvalidArgument` when bytes before `len` are missing; `NoSpace` and I/O errors of the
    /// journal; in `through` mode the under-store's error (then nothing is published).
    pub async fn publish(
        &self,
        handle: u64,
        len: u64,
        commit: bool,
        content: Vec<(String, String)>,
    ) -> WriteResult<Option<FileMeta>> {
        let s = self.session(handle)?;
        let result = match check_content(&s, commit, &content) {
            Ok(()) => self.publish_session(&s, len, commit, content).await,
            Err(e) => Err(e),
        };
        if commit {
            self.end_session(handle, &s).await;
        }
        result
    }

    async fn publish_session(
        &self,
        s: &Session,
        len: u64,
        commit: bool,
        content: Vec<(String, String)>,
    ) -> WriteResult<Option<FileMeta>> {
        let mut state = s.state.lock().await;
        if state.ended {
            return Err(WriteError::new(Status::NoSuchSession, "the write session was aborted"));
        }
        state.last_used = Instant::now();
        let have = state.received.contiguous();
        if have != len || state.received.0.len() > 1 {
            return Err(WriteError::new(
                Status::InvalidArgument,
                format!("the session has {have} contiguous bytes, not the {len} being published"),
            ));
        }
        if s.mode == WriteMode::Through && !s.append {
            if !commit {
                return Ok(None); // through: durable only at close
            }
            return self.commit_through(s, &mut state, len, content).await.map(Some);
        }
        if len == state.published && state.last_meta.is_some() {
            // Nothing new since the last flush: the file is what that flush made.
            return Ok(state.last_meta.clone());
        }
        let file = s.file.clone();
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(|e| WriteError::new(Status::Internal, e.to_string()))?
            .map_err(|e| WriteError::io("fsync the journal blob", &e))?;
        if s.mode == WriteMode::Through {
            // An append in through mode writes the key itself: in order with the persister.
            let _op = self.claim(&s.mount, &s.path).await;
            let result = self.append_through(s, &mut state, len).await;
            s.mount.ns.lock().finish(&s.path);
            return result;
        }
        let _op = s.mount.op.lock().await;
        let entry = if s.append {
            self.appended_entry(s, state.published, len).await?
        } else {
            if s.exclusive && state.published == 0 && self.exists(&s.mount, &s.path).await? {
                return Err(WriteError::new(
                    Status::AlreadyExists,
                    format!("/{}/{} exists", s.mount.name, s.path),
                ));
            }
            let id = self.new_id();
            Entry {
                id,
                kind: EntryKind::File(FileEntry {
                    version: self.version(id),
                    size: len,
                    mtime_ms: now_ms(),
                    segments: vec![Segment::Blob {
                        blob: s.blob,
                        start: 0,
                        len,
                    }],
                    ufs_version: None,
                    metadata: Some(with_content(&s.metadata, content)),
                }),
                state: mode_state(s.mode),
            }
        };
        let meta = entry.file().map(|f| file_meta(&s.path, f));
        self.install(&s.mount, vec![(s.path.clone(), entry)], true)?;
        self.published(s, &mut state, len, meta.clone());
        Ok(meta)
    }

    /// A `through` append: build the new object in the under-store (old bytes copied server-side),
    /// then publish it as clean. The caller holds the path (see `claim`).
    async fn append_through(&self, s: &Session, state: &mut SessionState, len: u64) -> WriteResult<Option<FileMeta>> {
        let mut entry = self.appended_entry(s, state.published, len).await?;
        let meta = self.upload_now(&s.mount, &s.path, &entry).await?;
        entry.state = EntryState::Clean;
        if let EntryKind::File(f) = &mut entry.kind {
            f.ufs_version = Some(meta.version.clone());
            f.segments = vec![ufs_segment(&s.path, &meta.version, meta.size)];
        }
        let meta = entry.file().map(|f| file_meta(&s.path, f));
        self.install(&s.mount, vec![(s.path.clone(), entry)], false)?;
        self.published(s, state, len, meta.clone());
        Ok(meta)
    }

    /// Book a publish: the session's first `len` bytes are the file's now.
    fn published(&self, s: &Session, state: &mut SessionState, len: u64, meta: Option<FileMeta>) {
        release_session_bytes(&s.mount, len.saturating_sub(state.published));
        state.published = len;
        state.last_meta = meta;
    }

    /// The entry of `path` with a session's bytes `[from, to)` appended.
    async fn appended_entry(&self, s: &Session, from: u64, to: u64) -> WriteResult<Entry> {
        let current = { s.mount.ns.lock().get(&s.path).cloned() };
        // The appended file keeps its metadata; a new one gets the session's.
        let mut metadata = Some(metadata_vec(&s.metadata));
        let mut segments = match current {
            Some(Entry {
                kind: EntryKind::File(f),
                ..
            }) => {
                metadata = f.metadata.map(without_content);
                f.segments
            }
            Some(Entry {
                kind: EntryKind::Deleted,
                ..
            }) => Vec::new(),
            Some(Entry {
                kind: EntryKind::Dir, ..
            }) => {
                return Err(WriteError::new(
                    Status::NotADirectory,
                    format!("{} is a directory", s.path),
                ));
            }
            None => match s.mount.ufs.stat(&s.path).await {
                Ok(o) => {
                    metadata = o.metadata.as_ref().map(metadata_vec);
                    if o.size > 0 {
                        vec![ufs_segment(&s.path, &o.version, o.size)]
                    } else {
                        Vec::new()
                    }
                }
                Err(UfsError::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(WriteError::ufs(&e)),
            },
        };
        let added = to - from;
        let open_blobs: Vec<u64> = self.sessions.lock().keys().copied().collect();
        match segments.last_mut() {
            // This session's previous flush: grow it.
            Some(Segment::Blob { blob, start, len }) if *blob == s.blob && *start + *len == from => *len += added,
            // A finished session's blob that ends the file: copy the bytes onto its end, so many
            // small appends make one blob and one segment.
            Some(Segment::Blob { blob, start, len }) if !open_blobs.contains(blob) && s.mode != WriteMode::Through => {
                let (journal, target, session_blob) = (self.journal.clone(), *blob, s.blob);
                let end = *start + *len;
                let copied =
                    tokio::task::spawn_blocking(move || append_blob(&journal, session_blob, from, added, target, end))
                        .await
                        .map_err(|e| WriteError::new(Status::Internal, e.to_string()))?;
                match copied {
                    Ok(true) => *len += added,
                    Ok(false) => segments.push(Segment::Blob {
                        blob: s.blob,
                        start: from,
                        len: added,
                    }),
                    Err(e) => return Err(WriteError::io("append to a journal blob", &e)),
                }
            }
            _ => segments.push(Segment::Blob {
                blob: s.blob,
                start: from,
                len: added,
            }),
        }
        let id = self.new_id();
        Ok(Entry {
            id,
            kind: EntryKind::File(FileEntry {
                version: self.version(id),
                size: segments.iter().map(Segment::len).sum(),
                mtime_ms: now_ms(),
                segments,
                ufs_version: None,
                metadata,
            }),
            state: mode_state(s.mode),
        })
    }

    /// Finish a `through` create: last part, complete (or one PUT), then publish as clean.
    async fn commit_through(
        &self,
        s: &Session,
        state: &mut SessionState,
        len: u64,
        content: Vec<(String, String)>,
    ) -> WriteResult<FileMeta> {
        let ufs = &s.mount.ufs;
        // Everything that does not touch the key first: the last part, or the bytes of a PUT.
        let prepared: WriteResult<Option<Bytes>> = async {
            match state.streaming.upload_id.clone() {
                None => {
                    let reader = SegmentReader {
                        journal: self.journal.clone(),
                        ufs: ufs.clone(),
                    };
                    let blob = Segment::Blob {
                        blob: s.blob,
                        start: 0,
                        len,
                    };
                    reader.read(&[blob]).await.map(Some).map_err(|e| WriteError::ufs(&e))
                }
                Some(upload_id) => {
                    let start = state.streaming.next_start;
                    if len > start {
                        let number = (start / self.config.part_size) as u32 + 1;
                        let task = self.upload_part_task(s, number, start, len - start, upload_id);
                        state.streaming.pending.push_back(task);
                    }
                    while !state.streaming.pending.is_empty() {
                        self.finish_oldest_part(s, state).await?;
                    }
                    Ok(None)
                }
            }
        }
        .await;
        let data = match prepared {
            Ok(data) => data,
            Err(e) => {
                self.abort_streaming(s, state).await;
                return Err(e);
            }
        };
        // Then the key itself, in order with the persister and other writers, and published
        // under the same hold.
        let _op = self.claim(&s.mount, &s.path).await;
        let result: WriteResult<ObjectMeta> = async {
            if s.exclusive && self.exists(&s.mount, &s.path).await? {
                return Err(WriteError::new(
                    Status::AlreadyExists,
                    format!("/{}/{} exists", s.mount.name, s.path),
                ));
            }
            match (data, state.streaming.upload_id.clone()) {
                (Some(data), _) => ufs
                    .put_with(&s.path, data, &s.metadata)
                    .await
                    .map_err(|e| WriteError::ufs(&e)),
                (None, Some(upload_id)) => {
                    let parts = std::mem::take(&mut state.streaming.done);
                    let done = ufs
                        .complete_multipart(&s.path, &upload_id, parts)
                        .await
                        .map_err(|e| WriteError::ufs(&e))?;
                    state.streaming.upload_id = None;
                    self.log_upload(&s.mount.name, &s.path, &upload_id, false);
                    Ok(done)
                }
                (None, None) => Err(WriteError::new(Status::Internal, "a through session lost its upload")),
            }
        }
        .await;
        let meta = match result {
            Ok(meta) => meta,
            Err(e) => {
                s.mount.ns.lock().finish(&s.path);
                self.abort_streaming(s, state).await;
                return Err(e);
            }
        };
        let id = self.new_id();
        let entry = Entry {
            id,
            kind: EntryKind::File(FileEntry {
                version: self.version(id),
                size: len,
                mtime_ms: now_ms(),
                segments: vec![ufs_segment(&s.path, &meta.version, len)],
                ufs_version: Some(meta.version.clone()),
                metadata: Some(with_content(&s.metadata, content)),
            }),
            state: EntryState::Clean,
        };
        let out = entry.file().map(|f| file_meta(&s.path, f)).expect("a file entry");
        let installed = self.install(&s.mount, vec![(s.path.clone(), entry)], false);
        s.mount.ns.lock().finish(&s.path);
        installed?;
        self.published(s, state, len, Some(out.clone()));
        self.cache_blob(&s.mount.name, &s.path, &out.version, s.blob, len).await;
        Ok(out)
    }

    /// Take the mount's `op` with `path` free for a direct under-store write: no persister job
    /// on it, and no dirty entry still copying from it. The path is marked in flight (the
    /// persister leaves it alone) until the caller calls `ns.finish(path)`.
    async fn claim<'a>(&self, m: &'a MountWrite, path: &str) -> tokio::sync::MutexGuard<'a, ()> {
        loop {
            let progress = self.progress.notified();
            let op = m.op.lock().await;
            {
                let mut ns = m.ns.lock();
                let own = ns.get(path).map_or(0, |e| self_refs(e, path));
                if !ns.is_in_flight(path) && ns.ufs_refs(path) <= own {
                    ns.start(path);
                    return op;
                }
            }
            drop(op);
            let _ = tokio::time::timeout(Duration::from_millis(200), progress).await;
        }
    }

    async fn abort_streaming(&self, s: &Session, state: &mut SessionState) {
        for task in state.streaming.pending.drain(..) {
            task.abort();
        }
        if let Some(upload_id) = state.streaming.upload_id.take() {
            self.abort_upload(&s.mount, &s.path, &upload_id).await;
        }
    }

    /// Abort a multipart upload; one that cannot be aborted now is retried later (and after a
    /// restart, from the journal).
    async fn abort_upload(&self, m: &MountWrite, path: &str, upload_id: &str) {
        match m.ufs.abort_multipart(path, upload_id).await {
            Ok(()) => self.log_upload(&m.name, path, upload_id, false),
            Err(e) => {
                tracing::warn!(path, upload_id, "could not abort a multipart upload, will retry: {e}");
                self.stale_uploads
                    .lock()
                    .push((m.name.clone(), path.to_owned(), upload_id.to_owned()));
            }
        }
    }

    /// Journal the start or end of a multipart upload.
    fn log_upload(&self, mount: &str, path: &str, upload_id: &str, open: bool) {
        let _gate = self.journal_gate.read();
        let key = (mount.to_owned(), path.to_owned(), upload_id.to_owned());
        if open {
            self.open_uploads.lock().insert(key);
        } else {
            self.open_uploads.lock().remove(&key);
        }
        let record = Record::Upload {
            mount: mount.to_owned(),
            path: path.to_owned(),
            upload_id: upload_id.to_owned(),
            open,
        };
        if let Err(e) = self.journal.append(&[record]) {
            tracing::warn!(path, upload_id, "could not journal a multipart upload: {e}");
        }
    }

    /// Drop a session: its unpublished bytes are gone, its blob too unless an entry uses it.
    pub async fn abort(&self, handle: u64) -> WriteResult<()> {
        let s = self.session(handle)?;
        {
            let mut state = s.state.lock().await;
            self.abort_streaming(&s, &mut state).await;
        }
        self.end_session(handle, &s).await;
        Ok(())
    }

    async fn end_session(&self, handle: u64, s: &Session) {
        if self.sessions.lock().remove(&handle).is_none() {
            return;
        }
        ::metrics::gauge!(metrics::WRITE_SESSIONS).decrement(1.0);
        // Under the state lock: a publish either finished before (its entry now uses the blob)
        // or sees `ended` and publishes nothing.
        let unpublished: u64 = {
            let mut state = s.state.lock().await;
            state.ended = true;
            let received: u64 = state.received.0.iter().map(|(a, b)| b - a).sum();
            received.saturating_sub(state.published)
        };
        release_session_bytes(&s.mount, unpublished);
        // A blob no entry uses has no reader either (reads resolve blobs through entries).
        if !s.mount.ns.lock().blob_used(s.blob) {
            self.journal.remove_blob(s.blob);
        }
    }

    // ---- namespace operations -------------------------------------------------------------

    /// Rename a file or a directory.
    ///
    /// # Errors
    /// `NotFound`, `NotADirectory`, `NotEmpty`, `InvalidArgument`, journal and under-store errors.
    pub async fn rename(&self, mount: &str, src: &str, dst: &str) -> WriteResult<()> {
        let m = self.coordinated(mount)?.clone();
        validate_path(src)?;
        validate_path(dst)?;
        refuse_staged(src)?;
        refuse_staged(dst)?;
        if src == dst {
            return Ok(());
        }
        if dst.starts_with(&format!("{src}/")) {
            return Err(WriteError::new(
                Status::InvalidArgument,
                format!("cannot move {src} into itself"),
            ));
        }
        let ids = {
            let _op = m.op.lock().await;
            let state = self.dirty_state(&m);
            let mut changes = Vec::new();
            if let Some(source) = self.file_source(&m, src).await? {
                if self.is_dir(&m, dst).await? {
                    return Err(WriteError::new(Status::NotADirectory, format!("{dst} is a directory")));
                }
                self.move_changes(&m, src, dst, source, state, &mut changes);
            } else {
                let members = self.dir_members(&m, src).await?;
                if members.is_empty() {
                    return Err(WriteError::new(
                        Status::NotFound,
                        format!("/{mount}/{src}: no such file or directory"),
                    ));
                }
                if self.file_source(&m, dst).await?.is_some() {
                    return Err(WriteError::new(Status::NotADirectory, format!("{dst} is a file")));
                }
                let marker = format!("{dst}/");
                if self.dir_members(&m, dst).await?.iter().any(|(k, _)| *k != marker) {
                    return Err(WriteError::new(
                        Status::NotEmpty,
                        format!("{dst} exists and is not empty"),
                    ));
                }
                for (key, source) in members {
                    let to = format!("{dst}{}", &key[src.len()..]);
                    self.move_changes(&m, &key, &to, source, state, &mut changes);
                }
            }
            // A destination that another pending copy still reads from would make the two wait
            // on each other for good (`mv a t; mv b a; mv t b`): such a moved file takes its bytes
            // into the journal now instead of copying them from the under-store later.
            for (to, entry) in &mut changes {
                let referenced = m.ns.lock().ufs_refs(to) > 0;
                if referenced && entry.state == EntryState::Dirty && reads_other_keys(entry, to) {
                    *entry = self.materialize(&m, entry).await?;
                }
            }
            let ids = changes.iter().map(|(_, e)| e.id).collect::<Vec<_>>();
            self.install(&m, changes, true)?;
            ids
        };
        self.wait_through(&m, &ids).await
    }

    /// The entry with all its bytes copied into a new journal blob (fsync'd).
    async fn materialize(&self, m: &MountWrite, entry: &Entry) -> WriteResult<Entry> {
        let Some(f) = entry.file() else {
            return Ok(entry.clone());
        };
        let blob = self.new_id();
        let file = Arc::new(
            self.journal
                .create_blob(blob)
                .map_err(|e| WriteError::io("create a journal blob", &e))?,
        );
        let reader = SegmentReader {
            journal: self.journal.clone(),
            ufs: m.ufs.clone(),
        };
        let mut at = 0;
        while at < f.size {
            let end = (at + MAX_WRITE).min(f.size);
            let bytes = reader
                .read(&slice(&f.segments, at, end))
                .await
                .map_err(|e| WriteError::ufs(&e))?;
            let (file, offset) = (file.clone(), at);
            tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                file.write_all_at(&bytes, offset).and_then(|()| file.sync_data())
            })
            .await
            .map_err(|e| WriteError::new(Status::Internal, e.to_string()))?
            .map_err(|e| WriteError::io("write to the journal", &e))?;
            at = end;
        }
        let mut f = f.clone();
        f.segments = if f.size > 0 {
            vec![Segment::Blob {
                blob,
                start: 0,
                len: f.size,
            }]
        } else {
            Vec::new()
        };
        Ok(Entry {
            id: entry.id,
            kind: EntryKind::File(f),
            state: entry.state,
        })
    }

    /// The overlay changes that move `source` from `from` to `to`.
    fn move_changes(
        &self,
        m: &MountWrite,
        from: &str,
        to: &str,
        source: Entry,
        state: EntryState,
        out: &mut Vec<(String, Entry)>,
    ) {
        let id = self.new_id();
        let kind = match source.kind {
            EntryKind::File(mut f) => {
                f.version = self.version(id);
                f.ufs_version = None;
                EntryKind::File(f)
            }
            other => other,
        };
        // A clean or cache-only file moves as it is stored; a renamed cache-only entry stays
        // cache-only.
        let moved_state = if source.state == EntryState::CacheOnly {
            EntryState::CacheOnly
        } else {
            state
        };
        out.push((
            to.to_owned(),
            Entry {
                id,
                kind,
                state: moved_state,
            },
        ));
        let in_ufs_maybe = m.mode != WriteMode::CacheOnly || source.state != EntryState::CacheOnly;
        if in_ufs_maybe {
            out.push((
                from.to_owned(),
                Entry {
                    id: self.new_id(),
                    kind: EntryKind::Deleted,
                    state,
                },
            ));
        } else {
            out.push((
                from.to_owned(),
                Entry {
                    id: self.new_id(),
                    kind: EntryKind::Deleted,
                    state: EntryState::CacheOnly,
                },
            ));
        }
    }

    /// Delete a file, or a directory with `recursive`.
    ///
    /// # Errors
    /// `NotFound`, `NotEmpty`, journal and under-store errors.
    pub async fn delete(&self, mount: &str, path: &str, recursive: bool) -> WriteResult<()> {
        let m = self.coordinated(mount)?.clone();
        validate_path(path)?;
        let ids = {
            let _op = m.op.lock().await;
            let state = self.dirty_state(&m);
            let mut victims = Vec::new();
            if self.file_source(&m, path).await?.is_some() {
                victims.push(path.to_owned());
            } else {
                let members = self.dir_members(&m, path).await?;
                if members.is_empty() {
                    return Err(WriteError::new(
                        Status::NotFound,
                        format!("/{mount}/{path}: no such file or directory"),
                    ));
                }
                let marker = format!("{path}/");
                if !recursive && members.iter().any(|(k, _)| *k != marker) {
                    return Err(WriteError::new(
                        Status::NotEmpty,
                        format!("/{mount}/{path} is a directory and not empty"),
                    ));
                }
                victims.extend(members.into_iter().map(|(k, _)| k));
            }
            let changes: Vec<(String, Entry)> = victims
                .into_iter()
                .map(|k| {
                    let e = Entry {
                        id: self.new_id(),
                        kind: EntryKind::Deleted,
                        state,
                    };
                    (k, e)
                })
                .collect();
            let ids = changes.iter().map(|(_, e)| e.id).collect::<Vec<_>>();
            self.install(&m, changes, true)?;
            ids
        };
        self.wait_through(&m, &ids).await
    }

    /// Create a directory (a marker `path/`).
    ///
    /// # Errors
    /// `AlreadyExists` when a file has that name.
    pub async fn mkdir(&self, mount: &str, path: &str) -> WriteResult<()> {
        let m = self.coordinated(mount)?.clone();
        validate_path(path)?;
        refuse_staged(path)?;
        let ids = {
            let _op = m.op.lock().await;
            if self.file_source(&m, path).await?.is_some() {
                return Err(WriteError::new(
                    Status::AlreadyExists,
                    format!("/{mount}/{path} is a file"),
                ));
            }
            if self.is_dir(&m, path).await? {
                return Ok(());
            }
            let entry = Entry {
                id: self.new_id(),
                kind: EntryKind::Dir,
                state: self.dirty_state(&m),
            };
            let ids = vec![entry.id];
            self.install(&m, vec![(format!("{path}/"), entry)], true)?;
            ids
        };
        self.wait_through(&m, &ids).await
    }

    /// Replace the user metadata of the file at `path`; its bytes stay as they are. The change
    /// is an overlay edit like a rename: the persister applies it (an object already in the
    /// under-store is copied onto itself with the new metadata), and in `through` mode before
    /// this returns.
    ///
    /// # Errors
    /// `NotFound` when there is no such file; `InvalidArgument` for metadata the under-store
    /// cannot keep.
    pub async fn set_metadata(&self, mount: &str, path: &str, metadata: Metadata) -> WriteResult<FileMeta> {
        let m = self.coordinated(mount)?.clone();
        validate_path(path)?;
        hoard_ufs::validate_metadata(path, &metadata).map_err(|e| WriteError::ufs(&e))?;
        let (ids, meta) = {
            let _op = m.op.lock().await;
            let Some(mut entry) = self.file_source(&m, path).await? else {
                return Err(WriteError::new(
                    Status::NotFound,
                    format!("/{mount}/{path}: no such file"),
                ));
            };
            entry.id = self.new_id();
            if entry.state != EntryState::CacheOnly {
                entry.state = self.dirty_state(&m);
            }
            let Some(meta) = entry.file_mut().map(|f| {
                // The bytes stay, so what describes them stays, whatever the caller sent.
                let mut pairs = without_content(metadata_vec(&metadata));
                pairs.extend(
                    f.metadata
                        .iter()
                        .flatten()
                        .filter(|(k, _)| is_content_bound(k))
                        .cloned(),
                );
                pairs.sort();
                f.metadata = Some(pairs);
                file_meta(path, f)
            }) else {
                return Err(WriteError::new(Status::Internal, "a file source that is no file"));
            };
            let ids = vec![entry.id];
            self.install(&m, vec![(path.to_owned(), entry)], true)?;
            (ids, meta)
        };
        self.wait_through(&m, &ids).await?;
        Ok(meta)
    }

    /// Wait (up to a few seconds) until nothing at or under `path` is dirty.
    ///
    /// # Errors
    /// `Timeout` when something still is (ask again).
    pub async fn sync(&self, mount: &str, path: &str) -> WriteResult<()> {
        let m = self.coordinated(mount)?.clone();
        let deadline = Instant::now() + SYNC_WAIT;
        loop {
            let progress = self.progress.notified();
            if !m.ns.lock().dirty_under(path) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let (bytes, ops) = self.backlog();
                return Err(WriteError::new(
                    Status::Timeout,
                    format!("/{mount}/{path} is not persisted yet ({ops} operations, {bytes} bytes pending)"),
                ));
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), progress).await;
        }
    }

    /// In `through` mode, wait until the persister applied these entries (errors come back).
    async fn wait_through(&self, m: &MountWrite, ids: &[u64]) -> WriteResult<()> {
        if m.mode != WriteMode::Through {
            return Ok(());
        }
        loop {
            let progress = self.progress.notified();
            let pending: Vec<u64> = {
                let ns = m.ns.lock();
                ids.iter().copied().filter(|id| ns.is_dirty(*id)).collect()
            };
            if pending.is_empty() {
                return Ok(());
            }
            if let Some(err) = pending.iter().find_map(|id| self.failure(*id)) {
                return Err(WriteError::new(
                    err.status,
                    format!(
                        "the under-store refused: {} (hoard keeps retrying in the background)",
                        err.message
                    ),
                ));
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), progress).await;
        }
    }

    fn failure(&self, id: u64) -> Option<WriteError> {
        let retries = self.retries.lock();
        match retries.get(&id) {
            Some((n, _, last)) if *n >= 3 => Some(WriteError::new(
                Status::UfsUnavailable,
                format!("{n} attempts failed, the last with: {last}"),
            )),
            _ => None,
        }
    }

    /// Log and apply overlay changes (`durable`: through the journal first).
    fn install(&self, m: &MountWrite, changes: Vec<(String, Entry)>, durable: bool) -> WriteResult<()> {
        // Appending and applying are one step for compaction (see `compact`).
        let _gate = self.journal_gate.read();
        let mut records = Vec::new();
        {
            let ns = m.ns.lock();
            for (path, entry) in &changes {
                if is_staged(path) && !entry.exists() {
                    // A deleted staged file leaves no tombstone: nothing of it is anywhere else.
                    if let Some(old) = ns.get(path).filter(|old| old.state != EntryState::Clean) {
                        records.push(Record::Clear {
                            mount: m.name.clone(),
                            path: path.clone(),
                            id: old.id,
                        });
                    }
                    continue;
                }
                let replaces_durable = ns.get(path).is_some_and(|old| old.state != EntryState::Clean);
                if (durable && entry.state != EntryState::Clean) || replaces_durable {
                    records.push(Record::Set {
                        mount: m.name.clone(),
                        path: path.clone(),
                        entry: entry.clone(),
                    });
                }
                if entry.state == EntryState::Clean && replaces_durable {
                    // A clean entry is not replayed: clear it, so what it replaced does not come back.
                    records.push(Record::Clear {
                        mount: m.name.clone(),
                        path: path.clone(),
                        id: entry.id,
                    });
                }
            }
        }
        if !records.is_empty() {
            self.journal
                .append(&records)
                .map_err(|e| WriteError::io("write the journal", &e))?;
        }
        let mut freed = Vec::new();
        {
            let mut ns = m.ns.lock();
            for (path, entry) in changes {
                self.metadata.forget_stat(&m.name, &path);
                if is_staged(&path) && !entry.exists() {
                    freed.extend(ns.remove(&path));
                } else {
                    freed.extend(ns.set(&path, entry));
                }
            }
        }
        m.generation.fetch_add(1, Ordering::AcqRel);
        for blob in freed {
            self.doom_blob(blob);
        }
        self.metadata.forget_lists(&m.name);
        self.wake.notify_one();
        Ok(())
    }

    fn dirty_state(&self, m: &MountWrite) -> EntryState {
        mode_state(m.mode)
    }

    /// Upload an entry's bytes to `path` now (through-mode appends).
    async fn upload_now(&self, m: &MountWrite, path: &str, entry: &Entry) -> WriteResult<ObjectMeta> {
        let f = entry.file().expect("a file entry");
        self.upload_file(m, path, f).await.map_err(|e| WriteError::ufs(&e))
    }

    /// Build the object of file `f` at `path` from its segments, with its metadata, logging
    /// the multipart upload it opens.
    async fn upload_file(&self, m: &MountWrite, path: &str, f: &FileEntry) -> UfsResult<ObjectMeta> {
        let reader = SegmentReader {
            journal: self.journal.clone(),
            ufs: m.ufs.clone(),
        };
        reader
            .upload(
                path,
                &f.segments,
                entry_metadata(f).as_ref(),
                self.config.part_size,
                whole_object,
                &|key, id, open| {
                    self.log_upload(&m.name, key, id, open);
                },
            )
            .await
    }

    // ---- lookups that consult the under-store -------------------------------------------

    /// The entry a file at `path` would move as: its overlay entry, or a span of its
    /// under-store object. `None` when there is no such file.
    async fn file_source(&self, m: &MountWrite, path: &str) -> WriteResult<Option<Entry>> {
        let found = m.ns.lock().get(path).cloned();
        match found {
            Some(e) if e.file().is_some() => Ok(Some(e)),
            Some(_) => Ok(None),
            None if is_staged(path) => Ok(None),
            None => match m.ufs.stat(path).await {
                Ok(o) => Ok(Some(ufs_entry(path, &o))),
                Err(UfsError::NotFound { .. }) => Ok(None),
                Err(e) => Err(WriteError::ufs(&e)),
            },
        }
    }

    /// Everything under directory `path` (`path/...`): overlay entries and under-store objects
    /// without one, markers included, keyed by full key.
    async fn dir_members(&self, m: &MountWrite, path: &str) -> WriteResult<Vec<(String, Entry)>> {
        let prefix = format!("{path}/");
        let objects = if is_staged(path) {
            Vec::new()
        } else {
            list_all(m.ufs.as_ref(), &prefix, None)
                .await
                .map_err(|e| WriteError::ufs(&e))?
        };
        let ns = m.ns.lock();
        let mut members: BTreeMap<String, Entry> = BTreeMap::new();
        for item in objects {
            if let ListItem::Object(o) = item
                && ns.get(&o.path).is_none()
            {
                let entry = if o.path.ends_with('/') {
                    Entry {
                        id: 0,
                        kind: EntryKind::Dir,
                        state: EntryState::Clean,
                    }
                } else {
                    ufs_entry(&o.path, &o)
                };
                members.insert(o.path.clone(), entry);
            }
        }
        for (k, e) in ns.under(&prefix) {
            if e.exists() {
                members.insert(k.clone(), e.clone());
            }
        }
        Ok(members.into_iter().collect())
    }

    /// Whether `path` is a directory: something lives under `path/`. Looks at one under-store
    /// key unless the overlay has tombstones there.
    async fn is_dir(&self, m: &MountWrite, path: &str) -> WriteResult<bool> {
        let prefix = format!("{path}/");
        let (live, touched) = {
            let ns = m.ns.lock();
            (ns.has_live_under(&prefix), ns.touches(&prefix))
        };
        if live {
            return Ok(true);
        }
        if is_staged(path) {
            return Ok(false);
        }
        if touched {
            return Ok(!self.dir_members(m, path).await?.is_empty());
        }
        let page = m
            .ufs
            .list(&ListRequest {
                prefix,
                delimiter: Some("/".into()),
                continuation: None,
                max_keys: 1,
            })
            .await
            .map_err(|e| WriteError::ufs(&e))?;
        Ok(!page.objects.is_empty() || !page.common_prefixes.is_empty())
    }

    async fn exists(&self, m: &MountWrite, path: &str) -> WriteResult<bool> {
        Ok(self.file_source(m, path).await?.is_some())
    }

    async fn current_size(&self, m: &MountWrite, path: &str) -> WriteResult<u64> {
        Ok(self
            .file_source(m, path)
            .await?
            .and_then(|e| e.file().map(|f| f.size))
            .unwrap_or(0))
    }

    // ---- the persister ------------------------------------------------------------------

    /// Start the dirty entries that may run now; returns when to look again for retries.
    fn start_ready(self: &Arc<Self>) -> Option<Duration> {
        let now = Instant::now();
        let mut next_retry: Option<Duration> = None;
        for m in self.mounts.values() {
            if m.mode == WriteMode::CacheOnly {
                continue;
            }
            let slots = self
                .config
                .upload_concurrency
                .saturating_sub(self.running.load(Ordering::Relaxed));
            if slots == 0 {
                break;
            }
            let mut jobs: Vec<(String, Entry)> = Vec::new();
            {
                let mut ns = m.ns.lock();
                let retries = self.retries.lock();
                // Oldest first; stop as soon as the free slots are taken, so a long queue
                // (a renamed directory of many objects) costs a pass only its head.
                for (id, path) in ns.dirty() {
                    if jobs.len() >= slots {
                        break;
                    }
                    if ns.is_in_flight(path) || jobs.iter().any(|(p, _)| p == path) {
                        continue;
                    }
                    if let Some((_, at, _)) = retries.get(&id)
                        && *at > now
                    {
                        let wait = *at - now;
                        next_retry = Some(next_retry.map_or(wait, |n| n.min(wait)));
                        continue;
                    }
                    let Some(entry) = ns.get(path) else { continue };
                    // Other dirty entries still copy from this key: it must not change yet.
                    if ns.ufs_refs(path) > self_refs(entry, path) {
                        continue;
                    }
                    jobs.push((path.clone(), entry.clone()));
                }
                for (path, _) in &jobs {
                    ns.start(path);
                }
            }
            for (path, entry) in jobs {
                self.running.fetch_add(1, Ordering::Relaxed);
                let (this, m) = (self.clone(), m.clone());
                tokio::spawn(async move {
                    let result = this.apply(&m, &path, &entry).await;
                    {
                        // Serialized with publishes: an append building on the old object
                        // either sees the rebased entry or is rebased itself.
                        let _op = m.op.lock().await;
                        this.finish_job(&m, &path, &entry, result);
                    }
                    this.running.fetch_sub(1, Ordering::Relaxed);
                    this.wake.notify_one();
                    this.progress.notify_waiters();
                });
            }
        }
        next_retry
    }

    /// Set the backlog gauges (a pass over the dirty entries: at most a few times a second).
    fn report_backlog(&self) {
        let mut last = self.backlog_reported.lock();
        if last.elapsed() < Duration::from_millis(500) {
            return;
        }
        *last = Instant::now();
        let (bytes, ops) = self.backlog();
        ::metrics::gauge!(metrics::WRITE_BACKLOG_BYTES).set(bytes as f64);
        ::metrics::gauge!(metrics::WRITE_BACKLOG_OPS).set(ops as f64);
    }

    /// Apply one entry to the under-store.
    async fn apply(&self, m: &MountWrite, path: &str, entry: &Entry) -> UfsResult<Option<ObjectMeta>> {
        match &entry.kind {
            // The whole object already at this key (a file renamed away and back): nothing to
            // copy (S3 refuses to copy an object onto itself), only check it is still that one.
            // Its metadata may have changed (chmod, touch through a mount): then the object is
            // copied onto itself with the new metadata.
            EntryKind::File(f) if own_object(&f.segments, path).is_some() => {
                let version = own_object(&f.segments, path).unwrap_or_default();
                let meta = m.ufs.stat(path).await?;
                let wanted = entry_metadata(f);
                if meta.version != version {
                    // A copy onto itself that a run which died before logging it already made
                    // (the copy gives the object a new version on some stores).
                    if wanted.is_some() && meta.metadata == wanted && meta.size == f.size {
                        return Ok(Some(meta));
                    }
                    return Err(UfsError::VersionMismatch {
                        path: path.to_owned(),
                        expected: version.to_owned(),
                    });
                }
                match wanted {
                    Some(wanted) if meta.metadata.as_ref() != Some(&wanted) => {
                        m.ufs.copy_with(path, path, Some(&wanted)).await.map(Some)
                    }
                    _ => Ok(Some(meta)),
                }
            }
            EntryKind::File(f) => self.upload_file(m, path, f).await.map(Some),
            EntryKind::Dir => m.ufs.put(path, Bytes::new()).await.map(Some),
            EntryKind::Deleted => m.ufs.delete(path).await.map(|()| None),
        }
    }

    fn finish_job(&self, m: &MountWrite, path: &str, entry: &Entry, result: UfsResult<Option<ObjectMeta>>) {
        match result {
            Ok(meta) => {
                self.retries.lock().remove(&entry.id);
                let _gate = self.journal_gate.read();
                // Plan under the overlay lock (the caller holds the mount's `op`, so nothing
                // else edits these entries), log, and only then apply and free blobs: a lost
                // log record must not leave a dirty entry whose blob is gone.
                let (changes, current) = {
                    let ns = m.ns.lock();
                    let current = ns.get(path).is_some_and(|e| e.id == entry.id);
                    let mut changes: Vec<(String, Option<Entry>)> = Vec::new();
                    match (&entry.kind, &meta) {
                        (EntryKind::File(f), Some(meta)) if current => {
                            let mut f = f.clone();
                            f.segments = vec![ufs_segment(path, &meta.version, f.size)];
                            f.ufs_version = Some(meta.version.clone());
                            if f.metadata.is_none() {
                                f.metadata = meta.metadata.as_ref().map(metadata_vec);
                            }
                            let clean = Entry {
                                id: entry.id,
                                kind: EntryKind::File(f),
                                state: EntryState::Clean,
                            };
                            changes.push((path.to_owned(), Some(clean)));
                        }
                        (EntryKind::File(done), Some(meta)) => {
                            // The entry was replaced or moved while it uploaded. Entries that
                            // start with its bytes (appends made meanwhile, a renamed copy) are
                            // rebuilt on the object just made: their old under-store bytes are
                            // gone, and a copy is cheaper than a second upload.
                            for (_, p) in ns.dirty() {
                                if let Some(later) = ns.get(p)
                                    && let Some(rebased) = rebase(later, done, path, meta)
                                {
                                    changes.push((p.clone(), Some(rebased)));
                                }
                            }
                        }
                        _ if current => changes.push((path.to_owned(), None)),
                        _ => {}
                    }
                    (changes, current)
                };
                let mut records = vec![Record::Clear {
                    mount: m.name.clone(),
                    path: path.to_owned(),
                    id: entry.id,
                }];
                records.extend(changes.iter().filter_map(|(p, e)| {
                    e.as_ref()
                        .filter(|e| e.state != EntryState::Clean)
                        .map(|e| Record::Set {
                            mount: m.name.clone(),
                            path: p.clone(),
                            entry: e.clone(),
                        })
                }));
                if let Err(e) = self.journal.append(&records) {
                    // Leave the entry dirty: the upload is redone later (it is idempotent).
                    tracing::warn!(path, "could not log a finished upload, it will be redone: {e}");
                    m.ns.lock().finish(path);
                    return;
                }
                let mut freed = Vec::new();
                {
                    let mut ns = m.ns.lock();
                    ns.finish(path);
                    for (p, change) in changes {
                        match change {
                            Some(e) => freed.extend(ns.set(&p, e)),
                            None => freed.extend(ns.remove(&p)),
                        }
                    }
                }
                for blob in freed {
                    self.doom_blob(blob);
                }
                if current {
                    m.generation.fetch_add(1, Ordering::AcqRel);
                    self.metadata.forget_stat(&m.name, path);
                    self.metadata.forget_lists(&m.name);
                }
                ::metrics::counter!(metrics::PERSISTED_OPS).increment(1);
            }
            Err(e) => {
                m.ns.lock().finish(path);
                let mut retries = self.retries.lock();
                let (failures, at, last) = retries.entry(entry.id).or_insert((0, Instant::now(), String::new()));
                *failures += 1;
                *last = error_chain(&e);
                let backoff = Duration::from_millis(100)
                    .saturating_mul(1 << (*failures - 1).min(16))
                    .min(self.config.upload_retry_max);
                *at = Instant::now() + backoff;
                ::metrics::counter!(metrics::UPLOAD_FAILURES).increment(1);
                tracing::warn!(
                    mount = %m.name,
                    path,
                    attempt = *failures,
                    retry_in_ms = backoff.as_millis() as u64,
                    "persisting failed, will retry: {}",
                    error_chain(&e)
                );
            }
        }
    }

    /// Delete blobs past their grace period, forget old clean entries, reap idle sessions,
    /// compact a long journal.
    fn housekeeping(self: &Arc<Self>) {
        let now = Instant::now();
        let ready: Vec<u64> = {
            let mut doomed = self.doomed_blobs.lock();
            let (ready, keep): (Vec<_>, Vec<_>) = doomed.drain(..).partition(|(at, _)| *at <= now);
            *doomed = keep;
            ready.into_iter().map(|(_, id)| id).collect()
        };
        for blob in ready {
            let used =
                self.mounts.values().any(|m| m.ns.lock().blob_used(blob)) || self.sessions.lock().contains_key(&blob);
            if !used {
                self.journal.remove_blob(blob);
            }
        }
        for m in self.mounts.values() {
            let forgotten = {
                let mut ns = m.ns.lock();
                let excess = ns.excess_clean(self.config.written_entries);
                for (_, path) in &excess {
                    ns.remove(path);
                }
                excess
            };
            if !forgotten.is_empty() {
                m.generation.fetch_add(1, Ordering::AcqRel);
            }
            for (_, path) in forgotten {
                self.metadata.forget_stat(&m.name, &path);
            }
        }
        let idle: Vec<u64> = self
            .sessions
            .lock()
            .iter()
            .filter(|(_, s)| s.touched.lock().elapsed() > self.config.session_idle_timeout)
            .map(|(id, _)| *id)
            .collect();
        for handle in idle {
            tracing::warn!(handle, "aborting an idle write session");
            let this = self.clone();
            tokio::spawn(async move { this.abort(handle).await });
        }
        if !self.stale_uploads.lock().is_empty() && !self.aborting_stale.swap(true, Ordering::AcqRel) {
            let stale = std::mem::take(&mut *self.stale_uploads.lock());
            let this = self.clone();
            tokio::spawn(async move {
                for (mount, path, upload_id) in stale {
                    match this.mounts.get(&mount) {
                        Some(m) => {
                            tracing::info!(mount, path, upload_id, "aborting a multipart upload left open");
                            this.abort_upload(m, &path, &upload_id).await;
                        }
                        None => this.stale_uploads.lock().push((mount, path, upload_id)),
                    }
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
                this.aborting_stale.store(false, Ordering::Release);
            });
        }
        if self.journal.log_len() > 64 << 20
            && let Err(e) = self.compact()
        {
            tracing::warn!("could not compact the journal: {e}");
        }
    }

    fn doom_blob(&self, blob: u64) {
        self.doomed_blobs.lock().push((Instant::now() + BLOB_GRACE, blob));
    }
}

/// Give back cache-only room counted for a session's bytes (they were published or dropped).
fn release_session_bytes(m: &MountWrite, bytes: u64) {
    let _ = m
        .session_bytes
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_sub(bytes)));
}

/// What a listing lists: the prefix, the delimiter, and whether markers list as files.
#[derive(Debug, Clone, Copy)]
struct Shape<'a> {
    prefix: &'a str,
    delimiter: Option<&'a str>,
    markers: bool,
}

/// Whether the overlay has something a listing of `prefix` shows (staged files show only to
/// listings of the staging directory).
fn touches_listed(ns: &Namespace, prefix: &str) -> bool {
    ns.under(prefix).any(|(k, _)| !hidden_staged(k, prefix))
}

/// Every item of a listing, all pages.
async fn list_all(ufs: &dyn UnderStore, prefix: &str, delimiter: Option<&str>) -> UfsResult<Vec<ListItem>> {
    let mut items = Vec::new();
    let mut continuation = None;
    loop {
        let page = ufs
            .list(&ListRequest {
                prefix: prefix.to_owned(),
                delimiter: delimiter.map(str::to_owned),
                continuation,
                max_keys: 1000,
            })
            .await?;
        continuation = page.next_continuation.clone();
        items.extend(page.into_items());
        if continuation.is_none() {
            return Ok(items);
        }
    }
}

/// Whether `key`, listed under `prefix`, is a directory marker a listing leaves out. Markers
/// show as the prefixes they make, not as files; only the listed directory's own marker lists as
/// an object, as in the under-store (so an empty directory's own listing is not empty). Plain
/// and merged listings both follow this.
pub(crate) fn hidden_marker(key: &str, prefix: &str, markers: bool) -> bool {
    !markers && key.ends_with('/') && key != prefix
}

/// Whether `key`, listed under `prefix`, is in the staging directory and the listing is not:
/// staged files show only to listings of the staging directory itself.
pub(crate) fn hidden_staged(key: &str, prefix: &str) -> bool {
    is_staged(key.trim_end_matches('/')) && !is_staged(prefix.trim_end_matches('/'))
}

fn list_key(item: &ListItem) -> &str {
    item.key()
}

fn entry_key(e: &ListEntry) -> &str {
    match e {
        ListEntry::File(f) => &f.path,
        ListEntry::Prefix(p) => p,
    }
}

fn ufs_segment(path: &str, version: &str, size: u64) -> Segment {
    Segment::Ufs {
        path: path.to_owned(),
        version: version.to_owned(),
        start: 0,
        len: size,
    }
}

/// An under-store object as an entry (for renames): its bytes are the whole object.
fn ufs_entry(path: &str, o: &ObjectMeta) -> Entry {
    Entry {
        id: 0,
        kind: EntryKind::File(FileEntry {
            version: o.version.clone(),
            size: o.size,
            mtime_ms: o.mtime_ms(),
            segments: if o.size > 0 {
                vec![ufs_segment(path, &o.version, o.size)]
            } else {
                Vec::new()
            },
            ufs_version: Some(o.version.clone()),
            // Content-bound keys are hoard's and never in an under-store object: any there were
            // set by someone else and do not describe these bytes.
            metadata: o.metadata.as_ref().map(|m| without_content(metadata_vec(m))),
        }),
        state: EntryState::Clean,
    }
}

/// The user metadata an entry's object gets (`None`: its source's); content-bound keys stay in
/// hoard (the object gets the under-store's own ETag).
fn entry_metadata(f: &FileEntry) -> Option<Metadata> {
    f.metadata
        .as_ref()
        .map(|v| v.iter().filter(|(k, _)| !is_content_bound(k)).cloned().collect())
}

/// Metadata pairs without their content-bound keys.
fn without_content(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    pairs.retain(|(k, _)| !is_content_bound(k));
    pairs
}

/// A new file's metadata: what its writer opened with and the content-bound keys of its commit.
fn with_content(metadata: &Metadata, content: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut all = metadata.clone();
    all.extend(content);
    metadata_vec(&all)
}

/// The content-bound metadata a publish carries: only a commit of a created file has any, and
/// only content-bound keys.
fn check_content(s: &Session, commit: bool, content: &[(String, String)]) -> WriteResult<()> {
    if content.is_empty() {
        return Ok(());
    }
    if !commit || s.append {
        return Err(WriteError::new(
            Status::InvalidArgument,
            "only the commit of a created file may set content metadata",
        ));
    }
    match content.iter().find(|(k, _)| !is_content_bound(k)) {
        Some((k, _)) => Err(WriteError::new(
            Status::InvalidArgument,
            format!("`{k}` is not a content metadata key"),
        )),
        None => Ok(()),
    }
}

/// How a path of mount `m` is written: staged files as `cache-only`, whatever the mount's mode.
fn mode_of(m: &MountWrite, path: &str) -> WriteMode {
    if is_staged(path) { WriteMode::CacheOnly } else { m.mode }
}

/// The state a change written in `mode` starts in.
fn mode_state(mode: WriteMode) -> EntryState {
    if mode == WriteMode::CacheOnly {
        EntryState::CacheOnly
    } else {
        EntryState::Dirty
    }
}

/// Metadata as the journal and the wire carry it (sorted pairs).
fn metadata_vec(m: &Metadata) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// `later` rebuilt on the object an upload of `done` just made at `path`, when `later` is `done`
/// with bytes appended (its segments start with `done`'s, the last one possibly grown).
fn rebase(later: &Entry, done: &FileEntry, path: &str, meta: &ObjectMeta) -> Option<Entry> {
    let f = later.file()?;
    let n = done.segments.len();
    if n == 0 || f.segments.len() < n || f.segments[..n - 1] != done.segments[..n - 1] {
        return None;
    }
    let grown = match (&done.segments[n - 1], &f.segments[n - 1]) {
        (
            Segment::Blob {
                blob: a,
                start: s,
                len: l,
            },
            Segment::Blob {
                blob: b,
                start: t,
                len: m,
            },
        ) => a == b && s == t && m >= l,
        (a, b) => a == b,
    };
    if !grown || meta.size != done.size {
        return None;
    }
    let mut segments = vec![ufs_segment(path, &meta.version, done.size)];
    segments.extend(slice(&f.segments, done.size, f.size));
    let mut file = f.clone();
    file.segments = segments;
    Some(Entry {
        id: later.id,
        kind: EntryKind::File(file),
        state: later.state,
    })
}

/// A `Ufs` segment from offset 0 is a whole object (hoard only makes such segments); one a
/// single server-side copy can make (S3's CopyObject stops at 5 GiB: larger ones are copied as
/// multipart parts).
fn whole_object(seg: &Segment) -> bool {
    matches!(seg, Segment::Ufs { start: 0, len, .. } if *len <= 5 << 30)
}

/// Whether a file entry reads under-store keys other than `path`.
fn reads_other_keys(entry: &Entry, path: &str) -> bool {
    entry.file().is_some_and(|f| {
        f.segments
            .iter()
            .any(|s| matches!(s, Segment::Ufs { path: p, .. } if p != path))
    })
}

/// The version, when `segments` are exactly the whole object at `path` itself.
fn own_object<'a>(segments: &'a [Segment], path: &str) -> Option<&'a str> {
    match segments {
        [
            Segment::Ufs {
                path: p,
                version,
                start: 0,
                ..
            },
        ] if p == path => Some(version),
        _ => None,
    }
}

/// How many of an entry's own segments read its own path (an append's old object).
fn self_refs(entry: &Entry, path: &str) -> u32 {
    entry.file().map_or(0, |f| {
        f.segments
            .iter()
            .filter(|s| matches!(s, Segment::Ufs { path: p, .. } if p == path))
            .count() as u32
    })
}

fn file_meta(path: &str, f: &FileEntry) -> FileMeta {
    FileMeta {
        path: path.to_owned(),
        size: f.size,
        version: f.version.clone(),
        mtime_ms: f.mtime_ms,
        homed: true,
        metadata: f.metadata.clone(),
    }
}

/// A directory marker made with mkdir and still in the overlay, as a listing shows it: an
/// empty object.
fn marker_meta(path: &str) -> FileMeta {
    FileMeta {
        path: path.to_owned(),
        size: 0,
        version: String::new(),
        mtime_ms: 0,
        homed: true,
        metadata: None,
    }
}

fn ufs_meta(o: ObjectMeta) -> FileMeta {
    FileMeta {
        mtime_ms: o.mtime_ms(),
        path: o.path,
        size: o.size,
        version: o.version,
        homed: false,
        metadata: o.metadata.as_ref().map(metadata_vec),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Staged files are made by writes and composes and go with deletes; nothing else touches them.
fn refuse_staged(path: &str) -> WriteResult<()> {
    if is_staged(path) {
        return Err(WriteError::new(
            Status::InvalidArgument,
            format!(
                "{path}: the staging directory holds staged files only; they cannot be renamed or made directories"
            ),
        ));
    }
    Ok(())
}

fn validate_path(path: &str) -> WriteResult<()> {
    if path.is_empty()
        || path.ends_with('/')
        || path.starts_with('/')
        || path.split('/').any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(WriteError::new(
            Status::InvalidArgument,
            format!("`{path}` is not a valid file path"),
        ));
    }
    Ok(())
}

/// Copy `len` bytes at `from` of blob `src` onto blob `dst` at `at`, if `dst` is exactly `at`
/// long (nothing else appended there); fsync. `Ok(false)` when `dst` is not.
fn append_blob(journal: &Journal, src: u64, from: u64, len: u64, dst: u64, at: u64) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let target = journal.open_blob(dst)?;
    if target.metadata()?.len() != at {
        return Ok(false);
    }
    let data = persist::read_blob(journal, src, from, len)?;
    let result = target.write_all_at(&data, at).and_then(|()| target.sync_data());
    if result.is_err() {
        let _ = target.set_len(at);
    }
    result.map(|()| true)
}

#[cfg(test)]
mod tests;
