//! Errors of mounting and unmounting (the errors of file operations are errno values, see
//! `errno.rs`).

use std::path::PathBuf;

use thiserror::Error;

/// Result of a mount or unmount.
pub type FuseResult<T> = Result<T, FuseError>;

/// Why a mount or unmount failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FuseError {
    /// `--mount NAME` names no mount of the cluster.
    #[error("no mount named `{name}` in the cluster config")]
    NoSuchMount {
        /// The name given.
        name: String,
    },
    /// The kernel refused the mount (no /dev/fuse, no permission, not a directory, ...).
    #[error("mount {}: {source}", path.display())]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// What the kernel or fusermount3 said.
        #[source]
        source: std::io::Error,
    },
    /// The unmount failed (`EBUSY` while files are open, `EINVAL` when nothing is mounted there).
    #[error("unmount {}: {source}", path.display())]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl FuseError {
    /// Whether an unmount failed because the file system is in use.
    pub fn is_busy(&self) -> bool {
        matches!(self, FuseError::Unmount { source, .. } if source.raw_os_error() == Some(libc::EBUSY))
    }
}
