//! Compose: a file made of other files' bytes without moving them.
//!
//! The new file's segments are its sources' segments, so the coordinator copies nothing: bytes in
//! journal blobs are shared (blobs are counted per entry), and under-store spans stay spans that
//! the persister copies server-side (`UploadPartCopy`, `CopyObject`). The S3 gateway copies
//! objects and completes multipart uploads (staged parts composed into the object) this way.

use std::collections::HashMap;

use hoard_transport::cluster::WriteMode;
use hoard_transport::wire::{ComposeRequest, ComposeSource, FileMeta, Status, is_content_bound};
use hoard_ufs::Metadata;

use super::{
    Entry, EntryKind, EntryState, FileEntry, MountWrite, Segment, WriteError, WritePath, WriteResult, file_meta,
    mode_of, mode_state, now_ms, reads_other_keys, validate_path, without_content,
};

/// Most sources of one compose (S3's most parts of a multipart upload).
pub const MAX_COMPOSE_SOURCES: usize = 10_000;

impl WritePath {
    /// Make `dst` the concatenation of the sources, and delete the sources with
    /// `remove_sources`, in one journaled step. In `through` mode this returns once the
    /// under-store has the new object.
    ///
    /// # Errors
    /// `NotFound` (a source is missing), `StaleVersion` (a source has another version than the
    /// caller saw), `AlreadyExists` (`exclusive`), `NotADirectory` (`dst` is a directory),
    /// `InvalidArgument` (no sources, too many, a bad path or metadata), journal and
    /// under-store errors.
    pub async fn compose(&self, req: ComposeRequest) -> WriteResult<FileMeta> {
        let m = self.coordinated(&req.mount)?.clone();
        check_request(&req)?;
        let (ids, meta) = {
            let _op = m.op.lock().await;
            if self.is_dir(&m, &req.dst).await? {
                return Err(WriteError::new(
                    Status::NotADirectory,
                    format!("/{}/{} is a directory", m.name, req.dst),
                ));
            }
            if req.exclusive && self.exists(&m, &req.dst).await? {
                return Err(WriteError::new(
                    Status::AlreadyExists,
                    format!("/{}/{} exists", m.name, req.dst),
                ));
            }
            let sources = self.compose_sources(&m, &req.sources).await?;
            let mut entry = self.composed_entry(&m, &req, &sources);
            entry = self.detach_if_needed(&m, &req.dst, entry).await?;
            let meta = entry.file().map(|f| file_meta(&req.dst, f)).expect("a file entry");
            let mut changes = vec![(req.dst.clone(), entry)];
            if req.remove_sources {
                for path in sources.keys().filter(|p| **p != req.dst) {
                    let removed = Entry {
                        id: self.new_id(),
                        kind: EntryKind::Deleted,
                        state: mode_state(mode_of(&m, path)),
                    };
                    changes.push((path.clone(), removed));
                }
            }
            let ids: Vec<u64> = changes.iter().map(|(_, e)| e.id).collect();
            self.install(&m, changes, true)?;
            (ids, meta)
        };
        self.wait_through(&m, &ids).await?;
        Ok(meta)
    }

    /// The entry of every distinct source path, checked against the version its caller saw.
    async fn compose_sources(&self, m: &MountWrite, sources: &[ComposeSource]) -> WriteResult<HashMap<String, Entry>> {
        let mut found: HashMap<String, Entry> = HashMap::new();
        for source in sources {
            if !found.contains_key(&source.path) {
                let Some(entry) = self.file_source(m, &source.path).await? else {
                    return Err(WriteError::new(
                        Status::NotFound,
                        format!("/{}/{}: no such file", m.name, source.path),
                    ));
                };
                found.insert(source.path.clone(), entry);
            }
            let version = found[&source.path].file().map(|f| f.version.as_str());
            if let Some(wanted) = &source.version
                && version != Some(wanted.as_str())
            {
                return Err(WriteError::new(
                    Status::StaleVersion,
                    format!(
                        "/{}/{} is no longer at version {wanted} (it is at {})",
                        m.name,
                        source.path,
                        version.unwrap_or("none")
                    ),
                ));
            }
        }
        Ok(found)
    }

    /// The new file: the sources' segments in order, a new version, and its metadata.
    fn composed_entry(&self, m: &MountWrite, req: &ComposeRequest, sources: &HashMap<String, Entry>) -> Entry {
        let files: Vec<&FileEntry> = req
            .sources
            .iter()
            .filter_map(|s| sources.get(&s.path).and_then(Entry::file))
            .collect();
        let segments: Vec<Segment> = files
            .iter()
            .flat_map(|f| f.segments.iter().filter(|s| !s.is_empty()).cloned())
            .collect();
        let metadata = match &req.metadata {
            Some(pairs) => Some(pairs.clone()),
            // One source: the same bytes, so what describes them still holds.
            None if files.len() == 1 => files[0].metadata.clone(),
            None => files.first().and_then(|f| f.metadata.clone()).map(without_content),
        };
        let id = self.new_id();
        Entry {
            id,
            kind: EntryKind::File(FileEntry {
                version: self.version(id),
                size: segments.iter().map(Segment::len).sum(),
                mtime_ms: now_ms(),
                segments,
                ufs_version: None,
                metadata,
            }),
            state: mode_state(mode_of(m, &req.dst)),
        }
    }

    /// The entry with its bytes copied into the journal when its under-store spans would not be
    /// protected: a never-persisted entry (staged) is not counted as reading its spans' keys, so
    /// the persister could overwrite or delete them under it; and a destination another pending
    /// copy reads from would wait on that copy while it waits on this one (as in `rename`).
    async fn detach_if_needed(&self, m: &MountWrite, dst: &str, entry: Entry) -> WriteResult<Entry> {
        let spans_elsewhere = entry
            .file()
            .is_some_and(|f| f.segments.iter().any(|s| matches!(s, Segment::Ufs { .. })));
        let unprotected = entry.state == EntryState::CacheOnly && m.mode != WriteMode::CacheOnly && spans_elsewhere;
        let crossed =
            entry.state == EntryState::Dirty && m.ns.lock().ufs_refs(dst) > 0 && reads_other_keys(&entry, dst);
        if unprotected || crossed {
            return self.materialize(m, &entry).await;
        }
        Ok(entry)
    }
}

/// The request's own checks, before anything is looked up.
fn check_request(req: &ComposeRequest) -> WriteResult<()> {
    validate_path(&req.dst)?;
    if req.sources.is_empty() || req.sources.len() > MAX_COMPOSE_SOURCES {
        return Err(WriteError::new(
            Status::InvalidArgument,
            format!(
                "a compose takes 1 to {MAX_COMPOSE_SOURCES} sources, not {}",
                req.sources.len()
            ),
        ));
    }
    for source in &req.sources {
        validate_path(&source.path)?;
    }
    if let Some(pairs) = &req.metadata {
        let user: Metadata = pairs.iter().filter(|(k, _)| !is_content_bound(k)).cloned().collect();
        hoard_ufs::validate_metadata(&req.dst, &user).map_err(|e| WriteError::ufs(&e))?;
    }
    Ok(())
}
