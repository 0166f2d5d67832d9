//! The write-back journal on local disk: blobs of written bytes, and a log of namespace records.
//!
//! ```text
//! <journal_dir>/namespace.log      records, each: u32 length | u32 CRC32C | rkyv bytes (LE)
//! <journal_dir>/blobs/<id>.blob    bytes written by a session (append-only)
//! ```
//! A record is acknowledged only after the log is fsync'd; the blobs it refers to are fsync'd
//! before it. Replay reads records until the first torn or corrupt one (a crash mid-append) and
//! cuts the log there: everything before it was acknowledged, nothing after it was. Compaction
//! rewrites the log as the records of the live entries (temporary file, fsync, rename, fsync of
//! the directory), so the log does not grow without bound.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use super::namespace::Entry;

/// Largest record accepted on replay (a longer length field means corruption).
const MAX_RECORD: usize = 256 << 20;

/// One log record.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Set the entry of a path.
    Set {
        /// Mount name.
        mount: String,
        /// Path in the mount.
        path: String,
        /// The entry.
        entry: Entry,
    },
    /// The entry `id` at a path is applied to the under-store: forget it on replay.
    Clear {
        /// Mount name.
        mount: String,
        /// Path in the mount.
        path: String,
        /// The entry's id.
        id: u64,
    },
    /// A multipart upload was started (`open`) or finished either way: one still open after a
    /// crash is aborted on replay, so no upload is left dangling.
    Upload {
        /// Mount name.
        mount: String,
        /// Key being uploaded.
        path: String,
        /// The under-store's upload id.
        upload_id: String,
        /// Started (true) or ended (false).
        open: bool,
    },
}

/// The journal of one worker.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    log: Mutex<File>,
}

impl Journal {
    /// Open (or create) the journal in `dir`, and the records of its log, in order.
    ///
    /// # Errors
    /// When the directory or the log cannot be opened or read.
    pub fn open(dir: &Path) -> io::Result<(Journal, Vec<Record>)> {
        fs::create_dir_all(dir.join("blobs"))?;
        let path = dir.join("namespace.log");
        let mut log = OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        let mut bytes = Vec::new();
        log.read_to_end(&mut bytes)?;
        let (records, good) = decode_all(&bytes);
        if good < bytes.len() {
            tracing::warn!(
                log = %path.display(),
                "the journal's last {} bytes are a torn record (a crash while writing it): cut",
                bytes.len() - good
            );
            log.set_len(good as u64)?;
            log.sync_all()?;
        }
        Ok((
            Journal {
                dir: dir.to_owned(),
                log: Mutex::new(log),
            },
            records,
        ))
    }

    /// Append records and fsync the log. On failure (a full disk) the log is cut back to where
    /// it was, so a half-written record never precedes later ones.
    ///
    /// # Errors
    /// The I/O error; nothing of the records is then durable.
    pub fn append(&self, records: &[Record]) -> io::Result<()> {
        let mut buf = Vec::new();
        for r in records {
            encode(r, &mut buf)?;
        }
        let mut log = self.log.lock();
        let before = log.metadata()?.len();
        let result = log.write_all(&buf).and_then(|()| log.sync_data());
        if result.is_err() {
            let _ = log.set_len(before);
        }
        result
    }

    /// Size of the log in bytes.
    pub fn log_len(&self) -> u64 {
        self.log.lock().metadata().map_or(0, |m| m.len())
    }

    /// Replace the log by `records` (the live state), atomically.
    ///
    /// # Errors
    /// When the new log cannot be written; the old one is then kept.
    pub fn compact(&self, records: &[Record]) -> io::Result<()> {
        let mut buf = Vec::new();
        for r in records {
            encode(r, &mut buf)?;
        }
        let mut log = self.log.lock();
        let tmp = self.dir.join("namespace.log.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        fs::rename(&tmp, self.dir.join("namespace.log"))?;
        File::open(&self.dir)?.sync_all()?;
        *log = OpenOptions::new().append(true).open(self.dir.join("namespace.log"))?;
        Ok(())
    }

    /// Path of a blob.
    pub fn blob_path(&self, id: u64) -> PathBuf {
        self.dir.join("blobs").join(format!("{id:016x}.blob"))
    }

    /// Create an empty blob.
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn create_blob(&self, id: u64) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.blob_path(id))
    }

    /// Open an existing blob for reading and appending.
    ///
    /// # Errors
    /// When it is missing.
    pub fn open_blob(&self, id: u64) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).open(self.blob_path(id))
    }

    /// Delete a blob (readers holding it open keep reading).
    pub fn remove_blob(&self, id: u64) {
        if let Err(e) = fs::remove_file(self.blob_path(id))
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(blob = id, "could not delete a blob: {e}");
        }
    }

    /// Ids of every blob on disk.
    ///
    /// # Errors
    /// When the blob directory cannot be read.
    pub fn blob_ids(&self) -> io::Result<Vec<u64>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(self.dir.join("blobs"))? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name.strip_suffix(".blob").and_then(|h| u64::from_str_radix(h, 16).ok()) {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}

fn encode(record: &Record, out: &mut Vec<u8>) -> io::Result<()> {
    let bytes = rkyv::to_bytes::<rancor::Error>(record).map_err(io::Error::other)?;
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
    out.extend_from_slice(&bytes);
    Ok(())
}

/// The records of a log, and the length of its valid part.
fn decode_all(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        let Some(body) = bytes.get(at + 8..at + 8 + len).filter(|_| len <= MAX_RECORD) else {
            break;
        };
        if crc32c::crc32c(body) != crc {
            break;
        }
        let mut aligned = AlignedVec::<16>::with_capacity(len);
        aligned.extend_from_slice(body);
        match rkyv::from_bytes::<Record, rancor::Error>(&aligned) {
            Ok(r) => records.push(r),
            Err(e) => {
                tracing::warn!("a journal record does not decode: {e}");
                break;
            }
        }
        at += 8 + len;
    }
    (records, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::namespace::{EntryKind, EntryState};

    fn set(path: &str, id: u64) -> Record {
        Record::Set {
            mount: "m".into(),
            path: path.into(),
            entry: Entry {
                id,
                kind: EntryKind::Dir,
                state: EntryState::Dirty,
            },
        }
    }

    #[test]
    fn records_survive_reopening_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (j, records) = Journal::open(dir.path()).expect("open");
            assert!(records.is_empty());
            j.append(&[set("a", 1), set("b", 2)]).expect("append");
            j.append(&[Record::Clear {
                mount: "m".into(),
                path: "a".into(),
                id: 1,
            }])
            .expect("append");
        }
        // A crash in the middle of a record: half of one more.
        let log = dir.path().join("namespace.log");
        let mut extra = Vec::new();
        encode(&set("c", 3), &mut extra).expect("encode");
        let mut f = OpenOptions::new().append(true).open(&log).expect("log");
        f.write_all(&extra[..extra.len() / 2]).expect("write");
        drop(f);
        let (j, records) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(records.len(), 3, "the torn record is not replayed");
        assert_eq!(records[1], set("b", 2));
        j.append(&[set("d", 4)]).expect("append after the cut");
        drop(j);
        let (j, records) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(records.last(), Some(&set("d", 4)));
        j.compact(&[set("b", 2)]).expect("compact");
        j.append(&[set("e", 5)]).expect("append after compaction");
        drop(j);
        let (_, records) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(records, vec![set("b", 2), set("e", 5)]);
    }

    #[test]
    fn a_corrupt_record_ends_the_replay() {
        let mut bytes = Vec::new();
        encode(&set("a", 1), &mut bytes).expect("encode");
        let first = bytes.len();
        encode(&set("b", 2), &mut bytes).expect("encode");
        bytes[first + 10] ^= 0xff;
        let (records, good) = decode_all(&bytes);
        assert_eq!((records.len(), good), (1, first));
    }

    #[test]
    fn blobs_are_listed_by_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (j, _) = Journal::open(dir.path()).expect("open");
        j.create_blob(0xabc).expect("blob");
        j.create_blob(7).expect("blob");
        let mut ids = j.blob_ids().expect("ids");
        ids.sort_unstable();
        assert_eq!(ids, vec![7, 0xabc]);
        j.remove_blob(7);
        assert_eq!(j.blob_ids().expect("ids"), vec![0xabc]);
    }
}
