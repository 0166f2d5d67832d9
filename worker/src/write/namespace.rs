//! A mount's namespace overlay: what hoard knows about the mount beyond its under-store.
//!
//! The coordinator of a mount keeps, per path, the entry that hoard's writes, renames, deletes
//! and mkdirs left there. A *dirty* entry is not yet applied to the under-store (the persister
//! applies it); a *clean* file entry is applied and kept a while so readers keep its version and
//! its pages; a *cache-only* entry is never applied. The overlay wins over the under-store: a
//! path with an entry shows the entry, a path without one shows the under-store.
//!
//! Entries are the journal's records too (rkyv-archived): replaying the journal rebuilds the
//! dirty and cache-only part of every overlay.

use std::collections::{BTreeMap, HashMap, HashSet};

use rkyv::{Archive, Deserialize, Serialize};

/// Where a span of a file's bytes lives.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Bytes `[start, start + len)` of an under-store object at a version.
    Ufs {
        /// Key in the under-store.
        path: String,
        /// The object's version tag.
        version: String,
        /// First byte.
        start: u64,
        /// Number of bytes.
        len: u64,
    },
    /// Bytes `[start, start + len)` of a journal blob.
    Blob {
        /// Blob id.
        blob: u64,
        /// First byte.
        start: u64,
        /// Number of bytes.
        len: u64,
    },
}

impl Segment {
    /// Number of bytes.
    pub fn len(&self) -> u64 {
        match self {
            Segment::Ufs { len, .. } | Segment::Blob { len, .. } => *len,
        }
    }

    /// Whether the span has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A file written (or renamed) through hoard: its bytes are its segments, in order.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Version tag hoard gives this content (`hoard:<epoch>-<id>`).
    pub version: String,
    /// Size in bytes (the sum of the segments).
    pub size: u64,
    /// Modification time, ms since the epoch.
    pub mtime_ms: u64,
    /// The bytes.
    pub segments: Vec<Segment>,
    /// Once persisted: the under-store's version of the object.
    pub ufs_version: Option<String>,
    /// User metadata the object gets. `None`: whatever the under-store object it was renamed
    /// from has (not known yet: an S3 listing of the directory carries none).
    pub metadata: Option<Vec<(String, String)>>,
}

/// What a path is.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A file.
    File(FileEntry),
    /// A directory created with mkdir (a marker object `path/` in the under-store).
    Dir,
    /// Deleted: hides the under-store's object until it is deleted there too.
    Deleted,
}

/// Whether an entry is applied to the under-store.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// Not yet applied.
    Dirty,
    /// Applied (files only stay in this state, for their readers).
    Clean,
    /// Never applied (`cache-only` mounts).
    CacheOnly,
}

/// One path's entry.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Unique among the coordinator's entries: names the operation for the persister.
    pub id: u64,
    /// What the path is.
    pub kind: EntryKind,
    /// Applied or not.
    pub state: EntryState,
}

impl Entry {
    /// The file, when the entry is a file.
    pub fn file(&self) -> Option<&FileEntry> {
        match &self.kind {
            EntryKind::File(f) => Some(f),
            _ => None,
        }
    }

    /// The file, to change it.
    pub fn file_mut(&mut self) -> Option<&mut FileEntry> {
        match &mut self.kind {
            EntryKind::File(f) => Some(f),
            _ => None,
        }
    }

    /// Whether the path exists in hoard's view (a file or directory, not a tombstone).
    pub fn exists(&self) -> bool {
        !matches!(self.kind, EntryKind::Deleted)
    }
}

/// The overlay of one mount.
#[derive(Debug, Default)]
pub struct Namespace {
    entries: BTreeMap<String, Entry>,
    /// Dirty entries by id (the persister's queue, oldest first).
    dirty: BTreeMap<u64, String>,
    /// Clean files by id, oldest first (forgotten beyond the retention limit).
    clean: BTreeMap<u64, String>,
    /// How many entries read each under-store path through a `Ufs` segment (a path may not be
    /// overwritten or deleted in the under-store while another entry still copies from it).
    ufs_refs: HashMap<String, u32>,
    /// How many entries use each blob.
    blob_refs: HashMap<u64, u32>,
    /// Paths with an under-store operation in flight.
    in_flight: HashSet<String>,
}

impl Namespace {
    /// The entry of a path.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Set (or replace) the entry of a path. Returns the blobs no entry uses any more.
    pub fn set(&mut self, path: &str, entry: Entry) -> Vec<u64> {
        let mut freed = self.remove(path);
        self.account(path, &entry, true);
        self.entries.insert(path.to_owned(), entry);
        // A blob moved from the old entry to the new one is not free.
        freed.retain(|b| !self.blob_refs.contains_key(b));
        freed
    }

    /// Remove the entry of a path. Returns the blobs no entry uses any more.
    pub fn remove(&mut self, path: &str) -> Vec<u64> {
        match self.entries.remove(path) {
            Some(old) => self.account(path, &old, false),
            None => Vec::new(),
        }
    }

    /// Keep the indexes in step with an entry added (`add`) or removed at `path`; returns the
    /// blobs a removal freed.
    fn account(&mut self, path: &str, entry: &Entry, add: bool) -> Vec<u64> {
        let mut freed = Vec::new();
        match entry.state {
            EntryState::Dirty => toggle(&mut self.dirty, entry.id, path, add),
            EntryState::Clean => toggle(&mut self.clean, entry.id, path, add),
            EntryState::CacheOnly => {}
        }
        if let EntryKind::File(f) = &entry.kind {
            for seg in &f.segments {
                match seg {
                    Segment::Ufs { path: src, .. } if entry.state == EntryState::Dirty => {
                        count(&mut self.ufs_refs, src.clone(), add);
                    }
                    Segment::Blob { blob, .. } => {
                        if !count(&mut self.blob_refs, *blob, add) {
                            freed.push(*blob);
                        }
                    }
                    Segment::Ufs { .. } => {}
                }
            }
        }
        freed.sort_unstable();
        freed.dedup();
        freed
    }

    /// Entries whose path starts with `prefix`, in key order.
    pub fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
        self.entries
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// Whether any entry lies under `prefix` (tombstones included: they change listings).
    pub fn touches(&self, prefix: &str) -> bool {
        self.under(prefix).next().is_some()
    }

    /// Whether a live (not deleted) entry lies under `prefix`.
    pub fn has_live_under(&self, prefix: &str) -> bool {
        self.under(prefix).any(|(_, e)| e.exists())
    }

    /// Number of entries that other dirty entries must copy from `path` first.
    pub fn ufs_refs(&self, path: &str) -> u32 {
        self.ufs_refs.get(path).copied().unwrap_or(0)
    }

    /// Whether a blob is used by an entry.
    pub fn blob_used(&self, blob: u64) -> bool {
        self.blob_refs.contains_key(&blob)
    }

    /// Dirty entries, oldest first.
    pub fn dirty(&self) -> impl Iterator<Item = (u64, &String)> {
        self.dirty.iter().map(|(id, p)| (*id, p))
    }

    /// Whether the entry `id` is still dirty.
    pub fn is_dirty(&self, id: u64) -> bool {
        self.dirty.contains_key(&id)
    }

    /// Number of dirty entries.
    pub fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    /// Whether anything at `path` or under `path/` is dirty (empty `path`: anything at all).
    pub fn dirty_under(&self, path: &str) -> bool {
        if path.is_empty() {
            return !self.dirty.is_empty();
        }
        let dir = format!("{path}/");
        self.entries.get(path).is_some_and(|e| e.state == EntryState::Dirty)
            || self.under(&dir).any(|(_, e)| e.state == EntryState::Dirty)
    }

    /// Mark a path's under-store operation as started; false if one already runs.
    pub fn start(&mut self, path: &str) -> bool {
        self.in_flight.insert(path.to_owned())
    }

    /// Whether an under-store operation on `path` is running.
    pub fn is_in_flight(&self, path: &str) -> bool {
        self.in_flight.contains(path)
    }

    /// Mark a path's under-store operation as ended.
    pub fn finish(&mut self, path: &str) {
        self.in_flight.remove(path);
    }

    /// Clean files beyond `keep`, oldest first, to forget.
    pub fn excess_clean(&self, keep: usize) -> Vec<(u64, String)> {
        let excess = self.clean.len().saturating_sub(keep);
        self.clean.iter().take(excess).map(|(id, p)| (*id, p.clone())).collect()
    }

    /// Every entry that must survive a restart (dirty and cache-only), for compacting the
    /// journal.
    pub fn durable(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter().filter(|(_, e)| e.state != EntryState::Clean)
    }

    /// Every blob an entry uses.
    pub fn blobs(&self) -> impl Iterator<Item = u64> + '_ {
        self.blob_refs.keys().copied()
    }

    /// Bytes of blobs used by cache-only entries (the mount's use of its capacity).
    pub fn cache_only_bytes(&self) -> u64 {
        self.entries
            .values()
            .filter(|e| e.state == EntryState::CacheOnly)
            .filter_map(Entry::file)
            .map(|f| f.size)
            .sum()
    }

    /// Bytes of dirty files (the backlog).
    pub fn dirty_bytes(&self) -> u64 {
        self.dirty
            .values()
            .filter_map(|p| self.entries.get(p))
            .filter_map(Entry::file)
            .map(|f| f.size)
            .sum()
    }
}

fn toggle(index: &mut BTreeMap<u64, String>, id: u64, path: &str, add: bool) {
    if add {
        index.insert(id, path.to_owned());
    } else {
        index.remove(&id);
    }
}

/// Count up or down; returns whether the key is still counted.
fn count<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, u32>, key: K, add: bool) -> bool {
    if add {
        *counts.entry(key).or_default() += 1;
        return true;
    }
    match counts.get_mut(&key) {
        Some(n) if *n > 1 => {
            *n -= 1;
            true
        }
        _ => {
            counts.remove(&key);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: u64, segments: Vec<Segment>, state: EntryState) -> Entry {
        let size = segments.iter().map(Segment::len).sum();
        Entry {
            id,
            kind: EntryKind::File(FileEntry {
                version: format!("hoard:{id}"),
                size,
                mtime_ms: 0,
                segments,
                ufs_version: None,
                metadata: None,
            }),
            state,
        }
    }

    fn blob(blob: u64, len: u64) -> Segment {
        Segment::Blob { blob, start: 0, len }
    }

    fn ufs(path: &str) -> Segment {
        Segment::Ufs {
            path: path.into(),
            version: "v".into(),
            start: 0,
            len: 10,
        }
    }

    #[test]
    fn replacing_an_entry_frees_its_blobs_unless_moved() {
        let mut ns = Namespace::default();
        assert!(ns.set("a", file(1, vec![blob(7, 5)], EntryState::Dirty)).is_empty());
        // The same blob under a new entry (an append extended it): not freed.
        assert!(ns.set("a", file(2, vec![blob(7, 9)], EntryState::Dirty)).is_empty());
        assert_eq!(ns.set("a", file(3, vec![blob(8, 1)], EntryState::Dirty)), vec![7]);
        // A rename moves the blob: set the destination first, then remove the source.
        let moved = ns.get("a").cloned().expect("entry");
        assert!(ns.set("b", moved).is_empty());
        assert!(ns.remove("a").is_empty(), "blob 8 is still used by b");
        assert_eq!(ns.remove("b"), vec![8]);
        assert_eq!(ns.dirty_len(), 0);
    }

    #[test]
    fn ufs_references_count_only_dirty_entries() {
        let mut ns = Namespace::default();
        ns.set("dst", file(1, vec![ufs("src")], EntryState::Dirty));
        ns.set(
            "src",
            Entry {
                id: 2,
                kind: EntryKind::Deleted,
                state: EntryState::Dirty,
            },
        );
        assert_eq!(ns.ufs_refs("src"), 1, "src may not be deleted before dst copies it");
        ns.set("dst", file(1, vec![ufs("dst")], EntryState::Clean));
        assert_eq!(ns.ufs_refs("src"), 0);
        assert_eq!(ns.dirty().map(|(id, _)| id).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn listing_helpers_see_entries_under_a_prefix_only() {
        let mut ns = Namespace::default();
        ns.set("d/x", file(1, vec![blob(1, 1)], EntryState::Dirty));
        ns.set("d0", file(2, vec![blob(2, 1)], EntryState::Dirty));
        ns.set(
            "e/y",
            Entry {
                id: 3,
                kind: EntryKind::Deleted,
                state: EntryState::Dirty,
            },
        );
        assert_eq!(ns.under("d/").count(), 1);
        assert!(ns.touches("e/") && !ns.has_live_under("e/"));
        assert!(ns.dirty_under("d") && !ns.dirty_under("f"));
        assert!(ns.dirty_under(""));
        assert_eq!(ns.dirty_bytes(), 2);
    }

    #[test]
    fn only_the_oldest_clean_files_are_excess() {
        let mut ns = Namespace::default();
        for i in 0..5 {
            ns.set(&format!("f{i}"), file(i, vec![], EntryState::Clean));
        }
        let excess: Vec<u64> = ns.excess_clean(3).into_iter().map(|(id, _)| id).collect();
        assert_eq!(excess, vec![0, 1]);
    }
}
