//! Inode numbers for hoard paths, stable while the mount lives.
//!
//! The kernel names files by inode number; hoard names them by path (`/MOUNT/key`). The table
//! gives every path it meets one number and keeps it until the path is deleted or renamed away.
//! Inode 1 is the file system's root: the virtual directory of all mounts (path `""`), or one
//! mount's root (`/NAME`) with `--mount NAME`. A path's child is `{path}/{name}` in both cases.
//!
//! Numbers are never reused and never forgotten (`forget` is not tracked): the table grows with
//! the number of distinct paths the kernel has looked up or listed, about 100 bytes each.

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
}

/// The inode table.
#[derive(Debug)]
pub struct Inodes {
    by_ino: HashMap<u64, Node>,
    by_path: BTreeMap<String, u64>,
    next: u64,
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
        };
        let root = Node {
            path: root_path.to_owned(),
            kind: Kind::Dir,
            gone: false,
        };
        t.by_ino.insert(ROOT_INO, root);
        t.by_path.insert(root_path.to_owned(), ROOT_INO);
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

    /// The inode of `path` as a `kind`: its number when it already is one, else a new number
    /// (a path that changed kind gets a new inode, so the kernel never sees an inode change type).
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
        };
        self.by_ino.insert(ino, node);
        self.by_path.insert(path.to_owned(), ino);
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

    /// Number of inodes given out (the table never shrinks).
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
        let a = t.upsert("/m/a", Kind::File);
        assert_eq!(t.upsert("/m/a", Kind::File), a);
        assert_eq!(t.get(a).map(|n| n.path.as_str()), Some("/m/a"));
        let d = t.upsert("/m/a", Kind::Dir);
        assert_ne!(d, a, "a path that became a directory gets a new inode");
        assert!(t.get(a).is_some_and(|n| n.gone));
        assert_eq!(t.find("/m/a"), Some((d, Kind::Dir)));
        assert_eq!(t.upsert("/m", Kind::File), ROOT_INO, "the root stays the root");
    }

    #[test]
    fn a_rename_moves_a_whole_tree_and_replaces_the_destination() {
        let mut t = Inodes::new("");
        let dir = t.upsert("/m/d", Kind::Dir);
        let f = t.upsert("/m/d/f", Kind::File);
        let deep = t.upsert("/m/d/s/g", Kind::File);
        let sibling = t.upsert("/m/d2", Kind::File);
        let old_dst = t.upsert("/m/e", Kind::Dir);
        let old_dst_child = t.upsert("/m/e/x", Kind::File);
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
        assert!(t.get(d).is_some_and(|n| n.gone));
        assert!(t.get(f).is_some_and(|n| n.gone));
        assert_eq!(t.find("/m/d.txt"), Some((other, Kind::File)));
        let again = t.upsert("/m/d", Kind::Dir);
        assert!(again > other, "numbers are never reused");
        assert_eq!(t.len(), 5);
        assert_eq!(child_path("", "m"), "/m");
        assert_eq!(child_path("/m", "a"), "/m/a");
    }
}
