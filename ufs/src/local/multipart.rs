//! Multipart uploads of the local store, staged as files.
//!
//! Writers of large objects (the gateway, the client's write-back) upload parts independently and
//! possibly in parallel, as with S3. Each upload is a directory `.hoard-multipart/<upload_id>/`
//! at the store's root (hidden from listings) holding a `key` file that names the target and one
//! file per part, named by its number; a part copied from another object is written there from
//! the source's file like an uploaded one. Completing concatenates the parts into a temporary file
//! next to the target and renames it into place; aborting removes the directory.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{MULTIPART_DIR, marker, open_versioned, stat_blocking, validate_key, version_of, write_atomically};
use crate::{CompletedPart, Metadata, ObjectMeta, UfsError, UfsResult};

/// The file in an upload's directory that names the key being uploaded.
const KEY_FILE: &str = "key";
/// The file in an upload's directory that holds the object's user metadata (encoded).
const METADATA_FILE: &str = "metadata";

/// Starts an upload of `key` with user `metadata`; returns its id (32 hex digits).
pub(super) fn create(root: &Path, key: &str, metadata: &Metadata) -> UfsResult<String> {
    let id = format!("{:032x}", rand::random::<u128>());
    let dir = root.join(MULTIPART_DIR).join(&id);
    fs::create_dir_all(&dir).map_err(|e| UfsError::io(key, e))?;
    for (name, content) in [
        (KEY_FILE, key.to_owned()),
        (METADATA_FILE, crate::metadata::encode(metadata)),
    ] {
        let mut file = File::create(dir.join(name)).map_err(|e| UfsError::io(key, e))?;
        file.write_all(content.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| UfsError::io(key, e))?;
    }
    Ok(id)
}

/// One upload in progress, named by its key and id.
#[derive(Debug)]
pub(super) struct Upload {
    key: String,
    id: String,
    dir: PathBuf,
}

impl Upload {
    /// Names the upload `upload_id` of `key`, checking both are well formed (not that it exists).
    pub(super) fn open(root: &Path, key: &str, upload_id: &str) -> UfsResult<Self> {
        validate_key(key)?;
        if upload_id.len() != 32 || !upload_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(UfsError::NotFound {
                path: format!("{key} (upload {upload_id})"),
            });
        }
        let dir = root.join(MULTIPART_DIR).join(upload_id);
        Ok(Self {
            key: key.to_owned(),
            id: upload_id.to_owned(),
            dir,
        })
    }

    fn not_found(&self) -> UfsError {
        UfsError::NotFound {
            path: format!("{} (upload {})", self.key, self.id),
        }
    }

    fn invalid(&self, reason: String) -> UfsError {
        UfsError::Invalid {
            path: self.key.clone(),
            reason,
        }
    }

    /// Fails with `NotFound` unless the upload exists and targets this key (S3's `NoSuchUpload`).
    fn check_exists(&self) -> UfsResult<()> {
        match fs::read(self.dir.join(KEY_FILE)) {
            Ok(key) if key == self.key.as_bytes() => Ok(()),
            Ok(_) => Err(self.not_found()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(self.not_found()),
            Err(e) => Err(UfsError::io(&self.key, e)),
        }
    }

    /// Stores part `part_number`, replacing an earlier upload of the same number.
    pub(super) fn put_part(&self, part_number: u32, data: &[u8]) -> UfsResult<CompletedPart> {
        crate::parts::check_part_number(&self.key, part_number)?;
        self.check_exists()?;
        let label = format!("{} part {part_number}", self.key);
        let meta = write_atomically(&label, &self.dir.join(part_number.to_string()), &Metadata::new(), |f| {
            f.write_all(data)
        })?;
        Ok(CompletedPart {
            part_number,
            tag: meta.version,
        })
    }

    /// Stores part `part_number` as a copy of bytes `range` of object `src_key` (file `src`), which
    /// must be at version `version` when given and stay unchanged while it is copied.
    pub(super) fn copy_part(
        &self,
        part_number: u32,
        src_key: &str,
        src: &Path,
        range: Range<u64>,
        version: Option<&str>,
    ) -> UfsResult<CompletedPart> {
        crate::parts::check_part_number(&self.key, part_number)?;
        self.check_exists()?;
        if marker::is_marker(src_key) {
            // A marker has no bytes to copy: once it is found at its version, any range is past its end.
            let meta = stat_blocking(src_key, src)?;
            super::check_version(src_key, &meta.version, version)?;
            let past_end = crate::parts::check_copy_range(src_key, &range, 0);
            return Err(past_end.expect_err("no byte range lies within 0 bytes"));
        }
        let (file, meta) = open_versioned(src_key, src, version)?;
        crate::parts::check_copy_range(src_key, &range, meta.len())?;
        let before = version_of(&meta);
        let label = format!("{} part {part_number}", self.key);
        let mut changed = false;
        let written = write_atomically(
            &label,
            &self.dir.join(part_number.to_string()),
            &Metadata::new(),
            |out| {
                let copied = copy_range(&file, &range, out)?;
                // Same open file: a rename over the source leaves its bytes alone, an in-place write shows.
                changed = copied != range.end - range.start || version_of(&file.metadata()?) != before;
                match changed {
                    true => Err(io::Error::other("the source changed while it was copied")),
                    false => Ok(()),
                }
            },
        );
        if changed {
            return Err(UfsError::VersionMismatch {
                path: src_key.to_owned(),
                expected: version.unwrap_or(&before).to_owned(),
            });
        }
        Ok(CompletedPart {
            part_number,
            tag: written?.version,
        })
    }

    /// Concatenates `parts` (ascending part numbers, tags as returned by [`Upload::put_part`])
    /// into `target`, then removes the upload.
    pub(super) fn complete(&self, target: &Path, parts: &[CompletedPart]) -> UfsResult<ObjectMeta> {
        self.check_exists()?;
        crate::parts::check_part_list(&self.key, parts)?;
        let mut files: Vec<File> = parts
            .iter()
            .map(|part| self.open_part(part))
            .collect::<UfsResult<_>>()?;
        let metadata = match fs::read_to_string(self.dir.join(METADATA_FILE)) {
            Ok(text) => crate::metadata::decode(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Metadata::new(), // Started by an older version.
            Err(e) => return Err(UfsError::io(&self.key, e)),
        };
        let meta = write_atomically(&self.key, target, &metadata, |out| {
            files.iter_mut().try_for_each(|file| io::copy(file, out).map(drop))
        })?;
        self.remove()?;
        Ok(meta)
    }

    /// Opens a part's file, checking that it is the upload the caller's tag names.
    fn open_part(&self, part: &CompletedPart) -> UfsResult<File> {
        let missing = || self.invalid(format!("part {} was not uploaded", part.part_number));
        let file = match File::open(self.dir.join(part.part_number.to_string())) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
            Err(e) => return Err(UfsError::io(&self.key, e)),
        };
        let meta = file.metadata().map_err(|e| UfsError::io(&self.key, e))?;
        if version_of(&meta) != part.tag {
            return Err(self.invalid(format!(
                "part {} has tag {}, not {}",
                part.part_number,
                version_of(&meta),
                part.tag
            )));
        }
        Ok(file)
    }

    /// Abandons the upload and its parts.
    pub(super) fn abort(&self) -> UfsResult<()> {
        self.check_exists()?;
        self.remove()
    }

    fn remove(&self) -> UfsResult<()> {
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(UfsError::io(&self.key, e)),
            _ => Ok(()),
        }
    }
}

/// Copies bytes `range` of `file` to `out`; returns how many it copied (fewer if the file shrank).
fn copy_range(mut file: &File, range: &Range<u64>, out: &mut File) -> io::Result<u64> {
    file.seek(SeekFrom::Start(range.start))?;
    io::copy(&mut file.take(range.end - range.start), out)
}
