//! POSIX attributes of files, kept in their user metadata.
//!
//! hoard stores objects; a file system also has a mode, an owner, a group and a modification
//! time that tools set (`chmod`, `chown`, `touch`, `cp -p`, `tar x`, `rsync -a`). The mount keeps
//! them in the object's user metadata (S3's `x-amz-meta-*`, an extended attribute of a local
//! store), under the keys s3fs uses, so an S3 object written by either tool shows the same
//! attributes in both: `mode` (decimal `st_mode`, with the file type bits), `uid`, `gid` (decimal)
//! and `mtime` (seconds since the epoch, with a fraction when it has nanoseconds).
//!
//! A symbolic link is an object whose `mode` has the link type bits (`S_IFLNK`) and whose
//! content is the link's target.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hoard_client::Metadata;

/// File type bits of `st_mode`.
const S_IFMT: u32 = 0o170_000;
/// A regular file.
pub const S_IFREG: u32 = 0o100_000;
/// A symbolic link.
pub const S_IFLNK: u32 = 0o120_000;

const MODE: &str = "mode";
const UID: &str = "uid";
const GID: &str = "gid";
/// The key of the modification time.
pub const MTIME: &str = "mtime";

/// The POSIX attributes a file's metadata holds; what it lacks comes from the mount's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Posix {
    /// `st_mode`, type bits included.
    pub mode: Option<u32>,
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// Modification time set by a tool (else the object's own time shows).
    pub mtime: Option<SystemTime>,
}

impl Posix {
    /// The attributes in `metadata` (pairs as the wire carries them); values that do not parse
    /// are ignored.
    pub fn from_pairs(metadata: &[(String, String)]) -> Posix {
        let mut p = Posix::default();
        for (key, value) in metadata {
            match key.as_str() {
                MODE => p.mode = value.parse().ok(),
                UID => p.uid = value.parse().ok(),
                GID => p.gid = value.parse().ok(),
                MTIME => p.mtime = parse_time(value),
                _ => {}
            }
        }
        p
    }

    /// Whether the file is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.mode.is_some_and(|m| m & S_IFMT == S_IFLNK)
    }

    /// `metadata` (pairs) with these attributes written over it; other keys are kept.
    pub fn merged_into(&self, metadata: &[(String, String)]) -> Metadata {
        let mut out: Metadata = metadata.iter().cloned().collect();
        let mut set = |key: &str, value: Option<String>| {
            if let Some(v) = value {
                out.insert(key.to_owned(), v);
            }
        };
        set(MODE, self.mode.map(|m| m.to_string()));
        set(UID, self.uid.map(|u| u.to_string()));
        set(GID, self.gid.map(|g| g.to_string()));
        set(MTIME, self.mtime.map(format_time));
        out
    }

    /// These attributes changed by `other`'s (what `other` sets wins).
    pub fn updated(self, other: Posix) -> Posix {
        Posix {
            mode: other.mode.or(self.mode),
            uid: other.uid.or(self.uid),
            gid: other.gid.or(self.gid),
            mtime: other.mtime.or(self.mtime),
        }
    }
}

/// `t` as seconds since the epoch, with nine decimals when it has nanoseconds.
fn format_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    match d.subsec_nanos() {
        0 => d.as_secs().to_string(),
        n => format!("{}.{n:09}", d.as_secs()),
    }
}

/// What [`format_time`] wrote (or s3fs's whole seconds).
fn parse_time(text: &str) -> Option<SystemTime> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: u64 = secs.parse().ok()?;
    let nanos = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        digits.parse().ok()?
    };
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(m: &Metadata) -> Vec<(String, String)> {
        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    #[test]
    fn attributes_round_trip_through_metadata_and_keep_other_keys() {
        let p = Posix {
            mode: Some(S_IFREG | 0o640),
            uid: Some(1000),
            gid: Some(100),
            mtime: Some(UNIX_EPOCH + Duration::new(1_700_000_000, 5)),
        };
        let other = vec![("content-tag".to_owned(), "x".to_owned())];
        let m = p.merged_into(&other);
        assert_eq!(m["mode"], "33184");
        assert_eq!(m["mtime"], "1700000000.000000005");
        assert_eq!(m["content-tag"], "x", "keys of others are kept");
        assert_eq!(Posix::from_pairs(&pairs(&m)), p);
        assert!(!p.is_symlink());
        let link = Posix {
            mode: Some(S_IFLNK | 0o777),
            ..Posix::default()
        };
        assert!(link.is_symlink());
    }

    #[test]
    fn s3fs_times_and_garbage() {
        let m = vec![
            ("mtime".to_owned(), "1700000000".to_owned()),
            ("uid".to_owned(), "not a number".to_owned()),
        ];
        let p = Posix::from_pairs(&m);
        assert_eq!(p.mtime, Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
        assert_eq!(p.uid, None);
        assert_eq!(parse_time("1.5"), Some(UNIX_EPOCH + Duration::from_millis(1500)));
        let base = Posix {
            mode: Some(1),
            uid: Some(2),
            ..Posix::default()
        };
        let changed = base.updated(Posix {
            uid: Some(3),
            ..Posix::default()
        });
        assert_eq!((changed.mode, changed.uid), (Some(1), Some(3)));
    }
}
