//! Inode numbers for hoard paths, stable while the mount lives.
//!
//! The kernel names files by inode number; hoard names them by path (`/MOUNT/key`). The table
//! gives every path it meets one number and keeps it until the path is deleted or renamed away.
//! Inode 1 is the file system's root: the virtual directory of all mounts (path `""`), or one
//! mount's root (`/NAME`) with `--mount NAME`. A path's child is `{path}/{name}` in both cases.
//!
//! Numbers are never reused. The table keeps the kernel's *lookup count* of every inode: one per
//! reply that hands the kernel an entry (lookup, create, mkdir, symlink, each entry of
//! `readdirplus` except `.` and `..`), minus what the kernel's `forget`s give back. An inode whose
//! count drops to zero is dropped; so is one a plain `readdir` gave out (its number only shows as
//! `d_ino`) that the kernel never counted, once the directory handle is released. The table
//! therefore holds what the kernel's inode cache holds, about 100 bytes per inode, and shrinks
//! when the kernel evicts (memory pressure, `echo 2 > /proc/sys/vm/drop_caches`). A later lookup
//! of a dropped path gives it a new number.

use std::collections::{BTreeMap, HashMap};

/// Inode number of the root.
pub const ROOT_INO: u64 = 1;

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A file (an object).
    File,
    /// A directory (a mount, a common prefix, or a directory marker).
    Dir,
}

/// One inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its hoard path (`""` for the virtual root of all mounts).
    pub path: String,
    /// What it is.
    pub kind: Kind,
    /// Its path was deleted, renamed over or given another inode: it only lives on for the
    /// kernel's references and answers `ENOENT`.
    pub gone: bool,
    /// Entries of it handed to the kernel and not forgotten yet (the kernel's lookup count).
    pub lookups: u64,
}

/// The inode table.
#[derive(Debug)]
pub struct Inodes {
    by_ino: HashMap<u64, Node>,
    by_path: BTreeMap<String, u64>,
    next: u64,
    /// `fuse_inodes`: how many inodes the table holds.
    gauge: metrics::Gauge,
}

/// The path of `name` in the directory at `parent`.
pub fn child_path(parent: &str, name: &str) -> String {
    format!("{parent}/{name}")
}

impl Inodes {
    /// A table holding only the root, a directory at `root_path`.
    pub fn new(root_path: &str) -> Inodes {
        let mut t = Inodes {
            by_ino: HashMap::new(),
            by_path: BTreeMap::new(),
            next: ROOT_INO + 1,
            gauge: metrics::gauge!("fuse_inodes"),
        };
        let root = Node {
            path: root_path.to_owned(),
            kind: Kind::Dir,
            gone: false,
            lookups: 0,
        };
        t.by_ino.insert(ROOT_INO, root);
        t.by_path.insert(root_path.to_owned(), ROOT_INO);
        t.gauge.set(1.0);
        t
    }

    /// The inode `ino`.
    pub fn get(&self, ino: u64) -> Option<&Node> {
        self.by_ino.get(&ino)
    }

    /// The inode of a path, if it has one.
    pub fn find(&self, path: &str) -> Option<(u64, Kind)> {
        let ino = *self.by_path.get(path)?;
        Some((ino, self.by_ino[&ino].kind))
    }

    /// The inode of `path` as a `kind`, for an entry handed to the kernel: its lookup count goes
    /// up by one. Call it only for a reply the kernel counts (see the module's documentation),
    /// and give the count back with [`Inodes::forget`] when the reply is not sent.
    pub fn entry(&mut self, path: &str, kind: Kind) -> u64 {
        let ino = self.upsert(path, kind);
        if let Some(node) = self.by_ino.get_mut(&ino) {
            node.lookups += 1;
        }
        ino
    }

    /// The kernel forgot `n` of its lookups of `ino`; at zero the inode is dropped (the root
    /// never is). An unknown inode is ignored. Whether the inode is gone from the table now.
    pub fn forget(&mut self, ino: u64, n: u64) -> bool {
        let Some(node) = self.by_ino.get_mut(&ino) else {
            return true;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups == 0 {
            self.drop_unreferenced(ino);
        }
        !self.by_ino.contains_key(&ino)
    }

    /// Drop `ino` if the kernel holds no lookup of it: a number a plain `readdir` gave out.
    pub fn drop_unreferenced(&mut self, ino: u64) {
        if ino == ROOT_INO || self.by_ino.get(&ino).is_none_or(|n| n.lookups > 0) {
            return;
        }
        if let Some(node) = self.by_ino.remove(&ino)
            && self.by_path.get(&node.path) == Some(&ino)
        {
            self.by_path.remove(&node.path);
        }
        self.gauge.set(self.by_ino.len() as f64);
    }

    /// The inode of `path` as a `kind`, not counted as a kernel lookup: its number when it already
    /// is one, else a new number (a path that changed kind gets a new inode, so the kernel never
    /// sees an inode change type). A new, uncounted number lives until
    /// [`Inodes::drop_unreferenced`] or a counted entry and its forget.
    pub fn upsert(&mut self, path: &str, kind: Kind) -> u64 {
        if let Some((ino, k)) = self.find(path) {
            if k == kind || ino == ROOT_INO {
                return ino;
            }
            self.forget_path(path);
        }
        let ino = self.next;
        self.next += 1;
        let node = Node {
            path: path.to_owned(),
            kind,
            gone: false,
            lookups: 0,
        };
        self.by_ino.insert(ino, node);
        self.by_path.insert(path.to_owned(), ino);
        self.gauge.set(self.by_ino.len() as f64);
        ino
    }

    /// `path` and everything under it are gone (deleted, or replaced by a rename).
    pub fn remove_tree(&mut self, path: &str) {
        for p in self.tree(path) {
            self.forget_path(&p);
        }
    }

    /// `src` and everything under it now live at `dst`; whatever was at `dst` is gone. The
    /// inodes keep their numbers, so open files and the kernel's cache follow the rename.
    pub fn rename(&mut self, src: &str, dst: &str) {
        if src == dst {
            return;
        }
        self.remove_tree(dst);
        for old in self.tree(src) {
            let Some(ino) = self.by_path.remove(&old) else {
                continue;
            };
            let new = format!("{dst}{}", &old[src.len()..]);
            if let Some(node) = self.by_ino.get_mut(&ino) {
                node.path.clone_from(&new);
            }
            self.by_path.insert(new, ino);
        }
    }

    /// Number of inodes held (the root included).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_ino.len()
    }

    /// `path` and the known paths under it (`path/...`), in key order.
    fn tree(&self, path: &str) -> Vec<String> {
        let below = format!("{path}/");
        let mut out: Vec<String> = self.by_path.get(path).map(|_| path.to_owned()).into_iter().collect();
        out.extend(
            self.by_path
                .range(below.clone()..)
                .take_while(|(p, _)| p.starts_with(&below))
                .map(|(p, _)| p.clone()),
        );
        out
    }

    fn forget_path(&mut self, path: &str) {
        if let Some(ino) = self.by_path.get(path).copied()
            && ino != ROOT_INO
        {
            self.by_path.remove(path);
            if let Some(node) = self.by_ino.get_mut(&ino) {
                node.gone = true;
            }
            // Kept while the kernel holds it; one it never counted goes now.
            self.drop_unreferenced(ino);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_their_inode_until_they_change_kind() {
        let mut t = Inodes::new("/m");
        assert_eq!(t.find("/m"), Some((ROOT_INO, Kind::Dir)));
        let a = t.entry("/m/a", Kind::File);
        assert_eq!(t.upsert("/m/a", Kind::File), a);
        assert_eq!(t.get(a).map(|n| n.path.as_str()), Some("/m/a"));
        let d = t.upsert("/m/a", Kind::Dir);
        assert_ne!(d, a, "a path that became a directory gets a new inode");
        assert!(t.get(a).is_some_and(|n| n.gone));
        assert_eq!(t.find("/m/a"), Some((d, Kind::Dir)));
        assert_eq!(t.upsert("/m", Kind::File), ROOT_INO, "the root stays the root");
    }

    #[test]
    fn an_inode_lives_while_the_kernel_counts_it() {
        let mut t = Inodes::new("/m");
        let a = t.entry("/m/a", Kind::File);
        assert_eq!(
            t.entry("/m/a", Kind::File),
            a,
            "a second lookup counts on the same inode"
        );
        assert_eq!(t.get(a).map(|n| n.lookups), Some(2));
        t.forget(a, 1);
        assert_eq!(t.find("/m/a"), Some((a, Kind::File)), "one lookup is still held");
        t.drop_unreferenced(a);
        assert!(
            t.get(a).is_some(),
            "a counted inode is not dropped with its directory handle"
        );
        t.forget(a, 1);
        assert_eq!(
            (t.get(a), t.find("/m/a")),
            (None, None),
            "forgotten: path and number go"
        );
        assert_eq!(t.len(), 1);
        let again = t.entry("/m/a", Kind::File);
        assert!(again > a, "a path looked up again gets a new number");

        let listed = t.upsert("/m/b", Kind::File);
        t.drop_unreferenced(listed);
        assert_eq!(
            t.find("/m/b"),
            None,
            "a number only readdir gave out goes with the handle"
        );
        t.forget(ROOT_INO, 10);
        t.drop_unreferenced(ROOT_INO);
        assert_eq!(t.find("/m"), Some((ROOT_INO, Kind::Dir)), "the root is never dropped");
        t.forget(12345, 1);
        assert_eq!(t.len(), 2, "an unknown inode's forget is ignored");
    }

    #[test]
    fn a_deleted_inode_lives_on_for_the_kernel_and_goes_with_its_last_forget() {
        let mut t = Inodes::new("/m");
        let held = t.entry("/m/d/held", Kind::File);
        let listed = t.upsert("/m/d/listed", Kind::File);
        let dir = t.entry("/m/d", Kind::Dir);
        t.remove_tree("/m/d");
        assert!(
            t.get(held).is_some_and(|n| n.gone),
            "the kernel still holds it: kept, gone"
        );
        assert!(t.get(listed).is_none(), "never counted: dropped at once");
        assert!(t.get(dir).is_some_and(|n| n.gone));
        let new = t.entry("/m/d/held", Kind::File);
        assert_ne!(new, held);
        t.forget(held, 1);
        assert!(t.get(held).is_none());
        assert_eq!(
            t.find("/m/d/held"),
            Some((new, Kind::File)),
            "the old inode's forget leaves the new path be"
        );
        let moved = t.entry("/m/x", Kind::File);
        t.rename("/m/x", "/m/y");
        t.forget(moved, 1);
        assert_eq!(
            (t.find("/m/x"), t.find("/m/y")),
            (None, None),
            "a renamed inode goes by its new path"
        );
    }

    #[test]
    fn a_rename_moves_a_whole_tree_and_replaces_the_destination() {
        let mut t = Inodes::new("");
        let dir = t.upsert("/m/d", Kind::Dir);
        let f = t.upsert("/m/d/f", Kind::File);
        let deep = t.upsert("/m/d/s/g", Kind::File);
        let sibling = t.upsert("/m/d2", Kind::File);
        let old_dst = t.entry("/m/e", Kind::Dir);
        let old_dst_child = t.entry("/m/e/x", Kind::File);
        t.rename("/m/d", "/m/e");
        assert_eq!(t.find("/m/e"), Some((dir, Kind::Dir)));
        assert_eq!(t.find("/m/e/f"), Some((f, Kind::File)));
        assert_eq!(t.get(deep).map(|n| n.path.as_str()), Some("/m/e/s/g"));
        assert_eq!(t.find("/m/d"), None);
        assert_eq!(t.find("/m/d/f"), None);
        assert_eq!(
            t.find("/m/d2"),
            Some((sibling, Kind::File)),
            "a name sharing the prefix stays"
        );
        assert!(t.get(old_dst).is_some_and(|n| n.gone));
        assert!(t.get(old_dst_child).is_some_and(|n| n.gone));
        assert_eq!(t.find("/m/e/x"), None);
    }

    #[test]
    fn removing_a_tree_forgets_its_paths_but_not_its_neighbours() {
        let mut t = Inodes::new("");
        let d = t.upsert("/m/d", Kind::Dir);
        let f = t.upsert("/m/d/f", Kind::File);
        let other = t.upsert("/m/d.txt", Kind::File);
        t.remove_tree("/m/d");
        assert!(
            t.get(d).is_none() && t.get(f).is_none(),
            "never counted by the kernel: dropped"
        );
        assert_eq!(t.find("/m/d.txt"), Some((other, Kind::File)));
        let again = t.upsert("/m/d", Kind::Dir);
        assert!(again > other, "numbers are never reused");
        assert_eq!(t.len(), 3);
        assert_eq!(child_path("", "m"), "/m");
        assert_eq!(child_path("/m", "a"), "/m/a");
    }
}
