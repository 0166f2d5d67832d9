//! Directory listings: hoard's paged listings turned into `readdir` entries.
//!
//! An open directory keeps the entries fetched so far, one hoard listing page (1,000 entries)
//! at a time, as the kernel asks for more: a directory of 100,000 entries costs 100 listing
//! calls, each answered from the coordinator's listing cache when warm, and only when read.
//! The kernel resumes a listing at the offset of the last entry it took; the offset of entry
//! `i` is `i + 1`, `.` and `..` being entries 0 and 1.

use std::collections::HashSet;

use hoard_client::{FileMeta, ListEntry};

use crate::inode::Kind;
use crate::posix::Posix;

/// Entries asked for per listing call.
pub const PAGE_ENTRIES: u32 = 1000;

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Its name in the directory.
    pub name: String,
    /// Its inode.
    pub ino: u64,
    /// File or directory.
    pub kind: Kind,
    /// Size and modification time, for files.
    pub size: u64,
    /// Modification time in ms since the epoch (0: unknown).
    pub mtime_ms: u64,
    /// The attributes a file's metadata holds; `None` when the listing did not say (S3's
    /// listings carry no metadata).
    pub posix: Option<Posix>,
}

/// An open directory.
#[derive(Debug)]
pub struct DirHandle {
    /// The directory's hoard path (`""` for the root of all mounts).
    pub path: String,
    /// Entries fetched so far, `.` and `..` first.
    pub entries: Vec<DirEntry>,
    /// Where the next listing page starts.
    pub continuation: Option<String>,
    /// Every page has been fetched.
    pub done: bool,
    names: HashSet<String>,
}

impl DirHandle {
    /// An open directory at `path` (inode `ino`, parent `parent`), nothing fetched yet.
    pub fn new(path: String, ino: u64, parent: u64) -> DirHandle {
        let dot = |name: &str, ino| DirEntry {
            name: name.to_owned(),
            ino,
            kind: Kind::Dir,
            size: 0,
            mtime_ms: 0,
            posix: None,
        };
        DirHandle {
            path,
            entries: vec![dot(".", ino), dot("..", parent)],
            continuation: None,
            done: false,
            names: HashSet::new(),
        }
    }

    /// Whether `name` is listed already.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Add an entry unless the name is already listed (a file `a` and a directory `a/` in the
    /// same directory: the file, which comes first in key order, is kept).
    pub fn push(&mut self, entry: DirEntry) {
        if self.names.insert(entry.name.clone()) {
            self.entries.push(entry);
        }
    }
}

/// A child of a directory, as its listing shows it.
pub type Child = (String, Kind, u64, u64, Option<Posix>);

/// The name, kind, size, mtime and (if known) POSIX attributes of a listing entry of the
/// directory whose keys start with `prefix` (`""` or ending with `/`); `None` for entries that
/// are not children of it (the directory's own marker, empty or unusable names).
pub fn child_of(prefix: &str, entry: &ListEntry) -> Option<Child> {
    let (key, kind, size, mtime_ms, posix) = match entry {
        ListEntry::File(FileMeta {
            path,
            size,
            mtime_ms,
            metadata,
            ..
        }) => (
            path.as_str(),
            Kind::File,
            *size,
            *mtime_ms,
            metadata.as_deref().map(Posix::from_pairs),
        ),
        ListEntry::Prefix(p) => (p.as_str(), Kind::Dir, 0, 0, None),
    };
    let rest = key.strip_prefix(prefix)?;
    let name = match kind {
        Kind::Dir => rest.strip_suffix('/').unwrap_or(rest),
        // A marker object (`dir/`) listed as a file names a directory.
        Kind::File if rest.ends_with('/') => {
            let name = rest.trim_end_matches('/');
            return usable(name).then(|| (name.to_owned(), Kind::Dir, 0, 0, None));
        }
        Kind::File => rest,
    };
    usable(name).then(|| (name.to_owned(), kind, size, mtime_ms, posix))
}

/// Whether a name can be a directory entry.
fn usable(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && name.len() <= 255
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> ListEntry {
        ListEntry::File(FileMeta {
            path: path.into(),
            size,
            version: "v".into(),
            mtime_ms: 9,
            homed: false,
            metadata: None,
        })
    }

    #[test]
    fn listing_entries_become_children() {
        assert_eq!(
            child_of("d/", &file("d/a.bin", 5)),
            Some(("a.bin".into(), Kind::File, 5, 9, None))
        );
        assert_eq!(
            child_of("d/", &ListEntry::Prefix("d/sub/".into())),
            Some(("sub".into(), Kind::Dir, 0, 0, None))
        );
        assert_eq!(child_of("", &file("top", 1)).map(|c| c.0), Some("top".into()));
        assert_eq!(child_of("d/", &file("d/", 0)), None, "the directory's own marker");
        assert_eq!(
            child_of("d/", &file("d/e/", 0)),
            Some(("e".into(), Kind::Dir, 0, 0, None)),
            "a marker of a subdirectory"
        );
        assert_eq!(child_of("d/", &file("x/a", 1)), None, "outside the directory");
        assert_eq!(child_of("d/", &file("d/a/b", 1)), None, "not a direct child");
    }

    #[test]
    fn a_name_is_listed_once() {
        let mut d = DirHandle::new("/m/d".into(), 5, 1);
        assert_eq!(d.entries.len(), 2);
        assert_eq!((d.entries[0].name.as_str(), d.entries[1].ino), (".", 1));
        let entry = |name: &str, kind| DirEntry {
            name: name.into(),
            ino: 9,
            kind,
            size: 0,
            mtime_ms: 0,
            posix: None,
        };
        d.push(entry("a", Kind::File));
        d.push(entry("a", Kind::Dir));
        d.push(entry("b", Kind::Dir));
        assert!(d.contains("a") && !d.contains("c"));
        let names: Vec<_> = d.entries.iter().map(|e| (e.name.as_str(), e.kind)).collect();
        assert_eq!(
            names,
            [(".", Kind::Dir), ("..", Kind::Dir), ("a", Kind::File), ("b", Kind::Dir)]
        );
    }
}
