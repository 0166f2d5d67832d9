//! The one error type of the under-stores, with the classifiers callers need to retry or give up.

use thiserror::Error;

/// Result of an under-store call.
pub type UfsResult<T> = Result<T, UfsError>;

/// Why an under-store call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UfsError {
    /// The object (or upload) does not exist.
    #[error("not found: {path}")]
    NotFound {
        /// Key that was asked for.
        path: String,
    },
    /// The object changed: it no longer has the version that was asked for.
    #[error("object {path} changed: expected version {expected}")]
    VersionMismatch {
        /// Key that was asked for.
        path: String,
        /// The version the caller expected.
        expected: String,
    },
    /// The request was refused as invalid (bad key, bad range, bad part list, ...).
    #[error("invalid request for {path}: {reason}")]
    Invalid {
        /// Key concerned.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// A mount URI or store configuration could not be used.
    #[error("bad under-store configuration: {0}")]
    Config(String),
    /// Local I/O failed.
    #[error("I/O error on {path}")]
    Io {
        /// Key or file concerned.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The remote store failed or could not be reached.
    #[error("{op} {path} failed")]
    Remote {
        /// The operation (`GetObject`, ...).
        op: &'static str,
        /// Key concerned.
        path: String,
        /// The cause (SDK error with its whole chain).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        /// Whether the failure is worth retrying (throttling, 5xx, timeouts, connection loss).
        retryable: bool,
    },
}

impl UfsError {
    /// Whether trying the same call again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            UfsError::Remote { retryable, .. } => *retryable,
            UfsError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }

    /// Whether the error is final for this request (not found, changed, invalid).
    pub fn is_permanent(&self) -> bool {
        !self.is_retryable()
    }

    /// Whether the object is missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, UfsError::NotFound { .. })
    }

    pub(crate) fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Self {
        UfsError::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An I/O error on `path`; a missing file, or a "parent" that is a file, means a missing object.
    pub(crate) fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        if matches!(
            source.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
        ) {
            return UfsError::NotFound { path: path.into() };
        }
        UfsError::Io {
            path: path.into(),
            source,
        }
    }
}
