//! Errors of the client library.

use hoard_transport::wire::Status;
use thiserror::Error;

/// Result of a client call.
pub type ClientResult<T> = Result<T, ClientError>;

/// Why a client call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The path is not of the form `/MOUNT/key`.
    #[error("invalid path `{path}`: {reason}")]
    InvalidPath {
        /// The path given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The cluster has no such mount.
    #[error("no mount named `{mount}` (see `hoard ls /`)")]
    NoSuchMount {
        /// The mount name.
        mount: String,
    },
    /// The file does not exist.
    #[error("{path}: no such file")]
    NotFound {
        /// The path.
        path: String,
    },
    /// A worker answered with an error that another worker would answer too.
    #[error("worker refused: {status:?}: {message}")]
    Worker {
        /// The status it gave.
        status: Status,
        /// Its message.
        message: String,
    },
    /// No worker could serve and the under-store failed too (or fallback is off).
    #[error("{path}: no worker could serve the request and the under-store failed")]
    Unavailable {
        /// The path.
        path: String,
        /// The last failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The under-store failed.
    #[error(transparent)]
    Ufs(#[from] hoard_ufs::UfsError),
    /// The cluster config is unusable.
    #[error(transparent)]
    Config(#[from] hoard_transport::cluster::ConfigError),
    /// The path exists and the call asked it not to.
    #[error("{path}: already exists")]
    AlreadyExists {
        /// The path.
        path: String,
    },
    /// The opened file was replaced: its version is gone.
    #[error("{path} changed since it was opened")]
    Changed {
        /// The path.
        path: String,
    },
    /// The file changed while it was being read, again and again.
    #[error("{path} kept changing while being read")]
    Unstable {
        /// The path.
        path: String,
    },
    /// A range cannot be lent: it crosses a page, the worker is not reached through shared
    /// memory, or the worker holds too much for leases already (read it instead).
    #[error("cannot lend {path}: {reason}")]
    NotLendable {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A lent page's lease ran out (or its worker let it go, restarting): ask again.
    #[error("the lease on a page of {path} ran out")]
    LeaseExpired {
        /// The path.
        path: String,
    },
}

impl ClientError {
    /// Whether the error says the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::NotFound { .. }) || matches!(self, ClientError::Ufs(e) if e.is_not_found())
    }
}
