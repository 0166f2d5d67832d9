//! Keeps listings from mistaking a directory that is empty only for a moment for a marker.
//!
//! An empty directory lists as a directory marker ([`super::marker`]). A write into a new
//! directory creates the directory before the file in it, and a delete removes the file before
//! pruning the directory it emptied: in both cases the directory is empty for a moment, and a
//! listing that looks then would show a marker nobody made (a renamed directory would seem to
//! come back). Such changes hold a shared lock on a file at the store's root while the directory
//! is empty; a listing that finds an empty directory takes the lock exclusively, so in-flight
//! changes finish first, and looks again. The lock is `flock(2)` on its own open file, so it
//! holds between threads of one process and between processes of one machine (several workers
//! on one directory) alike. One lock file in the temporary directory serves every store of the
//! machine, so a store's directory holds nothing but objects (a listing may wait for a change in
//! another store: changes are short, and only a listing that finds an empty directory waits). A
//! process that cannot make or open the lock file works without it.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

/// The lock file.
fn lock_path() -> PathBuf {
    std::env::temp_dir().join("hoard-local-store.lock")
}

/// A held lock; released when dropped (the file is closed).
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub(super) struct Guard(#[allow(dead_code, reason = "held for its drop")] Option<File>);

/// Held while a change may leave a directory empty for a moment. Changes do not exclude each
/// other.
pub(super) fn changing() -> Guard {
    lock(false)
}

/// Held by a listing while it looks again at a directory it found empty: no change is midway.
pub(super) fn settled() -> Guard {
    lock(true)
}

fn lock(exclusive: bool) -> Guard {
    let path = lock_path();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .or_else(|_| File::open(&path));
    let file = match file {
        Ok(file) => file,
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "no structure lock: listings may see a passing empty directory");
            return Guard(None);
        }
    };
    let locked = if exclusive { file.lock() } else { file.lock_shared() };
    match locked {
        Ok(()) => Guard(Some(file)),
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "could not take the structure lock");
            Guard(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settled_lock_waits_for_changes_in_flight() {
        let change = changing();
        let also = changing();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _settled = settled();
            tx.send(()).expect("send");
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(rx.try_recv().is_err(), "the listing waits while changes are midway");
        drop(change);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(rx.try_recv().is_err(), "one change is still midway");
        drop(also);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the listing goes on once changes finish");
        waiter.join().expect("join");
    }
}
