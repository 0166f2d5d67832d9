//! The keys of a [`LocalUnderStore`](crate::LocalUnderStore) directory tree, lazily and in key
//! order, for listings.
//!
//! Listing a page of a large tree must not read the whole tree. Sorting the entries of each
//! directory by their key text (a subdirectory as `name/`) and walking depth first yields keys in
//! global byte order: every key under `name/` starts with `name/`, which no sibling's key does, so
//! the subtree sorts exactly where `name/` sorts among its siblings. The walk then skips subtrees
//! outside the prefix or wholly before the continuation token, and stops when the page is full.
//!
//! An empty directory is a directory marker (see [`super::marker`]) and yields its own key
//! `name/`, which sorts where the directory does.
//!
//! A listing of a large directory comes in many pages, and each page walks again. Reading and
//! sorting a directory of 100,000 entries for each of its 100 pages made listings grow with the
//! square of the directory's size, so the sorted entries of large directories are kept
//! ([`DirCache`]) while the directory's modification time shows no change, and a page starts at
//! its continuation token by binary search.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use super::{MULTIPART_DIR, TMP_PREFIX, validate_key};
use crate::ListRequest;

/// Whether a directory entry named `name`, found in the directory of keys starting with `dir_rel`,
/// is hoard's own bookkeeping rather than an object.
pub(super) fn is_hidden(dir_rel: &str, name: &str) -> bool {
    name.starts_with(TMP_PREFIX) || (dir_rel.is_empty() && name == MULTIPART_DIR)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    /// Its key text ends with `/`.
    Dir,
    /// A directory known to be empty, yielded as its key (ending with `/`).
    Marker,
}

/// Entries of a directory, in descending key order.
type Entries = Arc<[(String, Kind)]>;

/// What [`entries`] found in a directory.
#[derive(Debug, Default)]
struct Dir {
    /// The visible entries, in descending key order.
    entries: Entries,
    /// The directory exists and holds nothing at all, hidden entries included: a marker.
    is_marker: bool,
}

/// Sorted keys under `root` that the listing `req` may return (a superset: the caller filters).
///
/// With delimiter `/`, a subdirectory past the prefix stands for one common prefix, so one key
/// found in it is enough. An empty directory yields its key (`name/`, a marker); a directory that
/// holds only hidden entries (a write in progress) or other things than files and directories
/// produces nothing. Symbolic links to files count as files; links to directories are not
/// followed.
#[derive(Debug)]
pub(super) struct SortedKeys<'a> {
    root: &'a Path,
    req: &'a ListRequest,
    /// Entries of the directories being walked, outermost first, each in descending order with
    /// the count not yet visited: the next one is the last of those.
    stack: Vec<(Entries, usize)>,
    /// An error to report before anything else.
    failed: Option<io::Error>,
}

impl<'a> SortedKeys<'a> {
    /// Starts at the directory named by the prefix up to its last `/`.
    pub(super) fn new(root: &'a Path, req: &'a ListRequest) -> Self {
        let mut walk = SortedKeys {
            root,
            req,
            stack: Vec::new(),
            failed: None,
        };
        let base = req.prefix.rfind('/').map_or("", |i| &req.prefix[..=i]);
        if !base.is_empty() && validate_key(&base[..base.len() - 1]).is_err() {
            return walk; // No valid key can start with this prefix.
        }
        match entries(root, base) {
            // The prefix names an empty directory: its marker is the one key to list.
            Ok(dir) if dir.is_marker && !base.is_empty() && base.starts_with(&req.prefix) => {
                walk.stack.push((Arc::from([(base.to_owned(), Kind::Marker)]), 1));
            }
            Ok(dir) => walk.push(dir.entries),
            Err(e) => walk.failed = Some(e),
        }
        walk
    }

    /// Walks `entries` next, from the first that may come after the continuation token: the
    /// token itself, the ones after it in key order, and a directory that holds it.
    fn push(&mut self, entries: Entries) {
        let left = match self.req.continuation.as_deref() {
            Some(token) => {
                let after = entries.partition_point(|(key, _)| key.as_str() > token);
                match entries.get(after) {
                    Some((key, kind)) if key == token || (*kind == Kind::Dir && token.starts_with(key.as_str())) => {
                        after + 1
                    }
                    _ => after,
                }
            }
            None => entries.len(),
        };
        self.stack.push((entries, left));
    }

    /// Whether the walk may skip subdirectory `sub` (ending with `/`).
    fn skip_dir(&self, sub: &str) -> bool {
        let prefix = self.req.prefix.as_str();
        let overlaps = sub.starts_with(prefix) || prefix.starts_with(sub);
        // All keys under `sub` are below a token that is past `sub` and not inside it.
        let before_token = self
            .req
            .continuation
            .as_deref()
            .is_some_and(|t| t > sub && !t.starts_with(sub));
        !overlaps || before_token
    }

    /// The smallest key under directory `dir_rel` (its own marker when it is empty), if it holds
    /// any visible file or empty directory at any depth.
    fn first_key(&self, dir_rel: &str) -> io::Result<Option<String>> {
        let dir = entries(self.root, dir_rel)?;
        if dir.is_marker {
            return Ok(Some(dir_rel.to_owned()));
        }
        for (key, kind) in dir.entries.iter().rev() {
            match kind {
                Kind::File | Kind::Marker => return Ok(Some(key.clone())),
                Kind::Dir => {
                    if let Some(key) = self.first_key(key)? {
                        return Ok(Some(key));
                    }
                }
            }
        }
        Ok(None)
    }
}

impl Iterator for SortedKeys<'_> {
    type Item = io::Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.failed.take() {
            return Some(Err(e));
        }
        loop {
            let (top, left) = self.stack.last_mut()?;
            if *left == 0 {
                self.stack.pop();
                continue;
            }
            *left -= 1;
            let (rel, kind) = top[*left].clone();
            match kind {
                Kind::File | Kind::Marker if rel.starts_with(&self.req.prefix) => return Some(Ok(rel)),
                Kind::File | Kind::Marker => {}
                Kind::Dir if self.skip_dir(&rel) => {}
                Kind::Dir if rel.starts_with(&self.req.prefix) && self.req.delimiter.as_deref() == Some("/") => {
                    match self.first_key(&rel) {
                        Ok(Some(key)) => return Some(Ok(key)),
                        Ok(None) => {}
                        Err(e) => return Some(Err(e)),
                    }
                }
                Kind::Dir => match entries(self.root, &rel) {
                    Ok(dir) if dir.is_marker && rel.starts_with(&self.req.prefix) => return Some(Ok(rel)),
                    Ok(dir) => self.push(dir.entries),
                    Err(e) => return Some(Err(e)),
                },
            }
        }
    }
}

/// The visible entries of directory `dir_rel` (empty, or ending with `/`) as key texts, in
/// descending order, and whether it is a marker. A directory that vanished meanwhile (a concurrent
/// delete pruned it) has no entries and is no marker; names that are not UTF-8 cannot be keys and
/// are skipped. A directory found empty is looked at again once no write or delete is midway
/// ([`super::settle`]): it may have been empty only for a moment.
fn entries(root: &Path, dir_rel: &str) -> io::Result<Dir> {
    let dir = DirCache::read(root, dir_rel)?;
    if !dir.is_marker || dir_rel.is_empty() {
        return Ok(dir);
    }
    let _settled = super::settle::settled();
    read_entries(root, dir_rel)
}

fn read_entries(root: &Path, dir_rel: &str) -> io::Result<Dir> {
    let read = match fs::read_dir(root.join(dir_rel)) {
        Ok(read) => read,
        Err(e) if is_gone(&e) => return Ok(Dir::default()),
        Err(e) => return Err(e),
    };
    let (mut entries, mut seen) = (Vec::new(), false);
    for entry in read {
        let entry = entry?;
        seen = true;
        let Ok(name) = entry.file_name().into_string() else {
            tracing::debug!(dir = dir_rel, name = ?entry.file_name(), "skipping a file name that is not UTF-8");
            continue;
        };
        if is_hidden(dir_rel, &name) {
            continue;
        }
        let kind = match entry.file_type() {
            Ok(t) if t.is_file() => Kind::File,
            Ok(t) if t.is_dir() => Kind::Dir,
            Ok(t) if t.is_symlink() && fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) => Kind::File,
            Ok(_) => continue,
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(e),
        };
        let suffix = if kind == Kind::Dir { "/" } else { "" };
        entries.push((format!("{dir_rel}{name}{suffix}"), kind));
    }
    entries.sort_unstable_by(|a, b| b.0.cmp(&a.0));
    Ok(Dir {
        entries: entries.into(),
        is_marker: !seen,
    })
}

/// Directories with at least this many entries are kept sorted between pages.
const CACHED_ENTRIES: usize = 1000;
/// Directories kept.
const CACHED_DIRS: usize = 8;
/// How long before a read the directory's last change must be for the read to be kept. A
/// change made after the read gives the directory a later modification time (file systems stamp
/// changes with a clock that lags the real one by a tick, far less than this), so a kept listing
/// whose directory still shows the time it was read at is still the directory's.
const SETTLED: Duration = Duration::from_secs(1);

/// Sorted entries of large directories, by path, with the modification time they were read at.
#[derive(Debug, Default)]
struct DirCache {
    dirs: Vec<(PathBuf, SystemTime, Entries)>,
}

static DIR_CACHE: Mutex<DirCache> = Mutex::new(DirCache { dirs: Vec::new() });

impl DirCache {
    /// The entries of `dir_rel`: kept ones when the directory has not changed since they were
    /// read, else read now (and kept when the directory is large and settled).
    fn read(root: &Path, dir_rel: &str) -> io::Result<Dir> {
        let path = root.join(dir_rel);
        let Some(before) = mtime(&path) else {
            return read_entries(root, dir_rel);
        };
        if let Some(entries) = DIR_CACHE
            .lock()
            .dirs
            .iter()
            .find(|(p, m, _)| *p == path && *m == before)
            .map(|(_, _, e)| e.clone())
        {
            return Ok(Dir {
                entries,
                is_marker: false,
            });
        }
        let started = SystemTime::now();
        let dir = read_entries(root, dir_rel)?;
        let settled = started.duration_since(before).is_ok_and(|age| age >= SETTLED);
        if dir.entries.len() >= CACHED_ENTRIES && settled && mtime(&path) == Some(before) {
            let mut cache = DIR_CACHE.lock();
            cache.dirs.retain(|(p, _, _)| *p != path);
            if cache.dirs.len() >= CACHED_DIRS {
                cache.dirs.remove(0);
            }
            cache.dirs.push((path, before, dir.entries.clone()));
        }
        Ok(dir)
    }
}

/// The modification time of directory `path`, if it is one.
fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).ok().filter(fs::Metadata::is_dir)?.modified().ok()
}

/// Whether an error only says that a path disappeared (or never was a directory).
fn is_gone(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(keys: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        for key in keys {
            let path = dir.path().join(key);
            fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            fs::write(path, b"x").expect("write");
        }
        dir
    }

    fn walk(root: &Path, prefix: &str, delimiter: Option<&str>, continuation: Option<&str>) -> Vec<String> {
        let req = ListRequest {
            prefix: prefix.into(),
            delimiter: delimiter.map(Into::into),
            continuation: continuation.map(Into::into),
            max_keys: 0,
        };
        SortedKeys::new(root, &req).collect::<io::Result<_>>().expect("walk")
    }

    #[test]
    fn yields_keys_in_byte_order_across_directories() {
        let keys = ["a!", "a-x", "a.txt", "a/b", "a/c/d", "a0", "b/ z", "b/z"];
        let dir = tree(&keys);
        assert_eq!(walk(dir.path(), "", None, None), keys);
    }

    #[test]
    fn skips_subtrees_outside_the_prefix_or_before_the_token() {
        let dir = tree(&["a/1", "a/2", "b/1", "b/2", "c/1"]);
        assert_eq!(walk(dir.path(), "b", None, None), ["b/1", "b/2"]);
        assert_eq!(walk(dir.path(), "b/", None, None), ["b/1", "b/2"]);
        assert_eq!(walk(dir.path(), "", None, Some("b/1")), ["b/1", "b/2", "c/1"]);
        assert_eq!(walk(dir.path(), "", None, Some("b0")), ["c/1"]);
    }

    #[test]
    fn a_slash_delimiter_reads_one_key_per_subdirectory() {
        let dir = tree(&["a/x/1", "a/x/2", "a/y", "b"]);
        fs::create_dir_all(dir.path().join("hidden")).expect("mkdir");
        fs::write(dir.path().join("hidden/.hoard-tmp-1"), b"in progress").expect("write");
        assert_eq!(
            walk(dir.path(), "", Some("/"), None),
            ["a/x/1", "b"],
            "the smallest key stands for a/; a directory of hidden files stands for nothing"
        );
        assert_eq!(walk(dir.path(), "a/", Some("/"), None), ["a/x/1", "a/y"]);
    }

    #[test]
    fn empty_directories_are_markers() {
        let dir = tree(&["a/x", "b"]);
        for empty in ["a/e", "c/d/e", "z"] {
            fs::create_dir_all(dir.path().join(empty)).expect("mkdir");
        }
        assert_eq!(walk(dir.path(), "", None, None), ["a/e/", "a/x", "b", "c/d/e/", "z/"]);
        assert_eq!(
            walk(dir.path(), "", Some("/"), None),
            ["a/e/", "b", "c/d/e/", "z/"],
            "an empty directory stands for its parent's prefix"
        );
        assert_eq!(walk(dir.path(), "a/", Some("/"), None), ["a/e/", "a/x"]);
        assert_eq!(
            walk(dir.path(), "c/d/e/", Some("/"), None),
            ["c/d/e/"],
            "the prefix itself"
        );
        assert_eq!(walk(dir.path(), "c/d/e/", None, None), ["c/d/e/"]);
        assert_eq!(walk(dir.path(), "c/d/", None, None), ["c/d/e/"]);
        assert!(walk(dir.path(), "c/d/e/x", None, None).is_empty());
        assert_eq!(walk(dir.path(), "", None, Some("a/x")), ["a/x", "b", "c/d/e/", "z/"]);
    }

    #[test]
    fn bookkeeping_names_are_hidden() {
        assert!(is_hidden("", ".hoard-multipart"));
        assert!(!is_hidden("a/", ".hoard-multipart"));
        assert!(is_hidden("a/", ".hoard-tmp-123"));
        assert!(!is_hidden("", "hoard-tmp"));
    }

    #[test]
    fn a_large_settled_directory_is_kept_between_pages_and_read_again_once_changed() {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let big = dir.path().join("big");
        fs::create_dir(&big).expect("mkdir");
        let mut keys: Vec<String> = (0..1500).map(|i| format!("big/f{i:05}")).collect();
        for key in &keys {
            fs::write(dir.path().join(key), b"x").expect("write");
        }
        let settle = || {
            let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
            fs::File::open(&big)
                .and_then(|d| d.set_modified(an_hour_ago))
                .expect("age the directory");
        };
        settle();
        // Pages of 100, each resuming after the last key of the one before (the walk may yield
        // the token itself: pages drop it, as `paginate` does).
        let page = |token: Option<&str>| -> Vec<String> {
            walk(dir.path(), "big/", None, token)
                .into_iter()
                .filter(|k| token.is_none_or(|t| k.as_str() > t))
                .take(100)
                .collect()
        };
        let mut listed: Vec<String> = Vec::new();
        loop {
            let next = page(listed.last().map(String::as_str));
            if next.is_empty() {
                break;
            }
            listed.extend(next);
        }
        assert_eq!(listed, keys, "every key once, in order, across pages");
        assert!(
            DIR_CACHE
                .lock()
                .dirs
                .iter()
                .any(|(p, _, e)| *p == big && e.len() == 1500),
            "the directory is kept"
        );
        // A change shows in the next listing, settled or not.
        fs::write(big.join("f00500a"), b"x").expect("write");
        keys.push("big/f00500a".to_owned());
        keys.sort();
        assert_eq!(walk(dir.path(), "big/", None, None), keys);
        fs::remove_file(big.join("f00007")).expect("rm");
        settle();
        keys.retain(|k| k != "big/f00007");
        assert_eq!(walk(dir.path(), "big/", None, Some("big/f00005")), keys[5..]);
    }
}
