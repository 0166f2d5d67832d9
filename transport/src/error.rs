//! Errors of the transport layer, with the wire [`Status`](crate::wire::Status) each maps to.

use thiserror::Error;

use crate::wire::Status;

/// Result of a transport operation.
pub type TransportResult<T> = Result<T, TransportError>;

/// Why a frame could not be sent, received or understood.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The socket failed.
    #[error("connection I/O failed")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection (or it was closed after an earlier error).
    #[error("connection closed")]
    Closed,
    /// A frame did not start with hoard's magic number.
    #[error("bad frame magic {found:#010x}")]
    BadMagic {
        /// What was received instead.
        found: u32,
    },
    /// The peer speaks another protocol version.
    #[error("protocol version {found} not supported (this side speaks {supported})")]
    VersionMismatch {
        /// The peer's version.
        found: u16,
        /// Ours.
        supported: u16,
    },
    /// A frame announced more bytes than the limit allows.
    #[error("frame too large: {what} of {len} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// `message` or `payload`.
        what: &'static str,
        /// Announced length.
        len: u64,
        /// Configured limit.
        limit: u64,
    },
    /// The archived message failed validation, or its kind disagrees with the header.
    #[error("malformed {kind} message: {reason}")]
    Malformed {
        /// The message kind from the header.
        kind: u16,
        /// What validation said.
        reason: String,
    },
    /// A message could not be serialised.
    #[error("encode message: {0}")]
    Encode(String),
    /// The handshake was refused.
    #[error("handshake refused: {status:?}: {message}")]
    Refused {
        /// Why.
        status: Status,
        /// The worker's words.
        message: String,
    },
    /// No reply came in time.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
}

impl TransportError {
    /// The wire status that describes this error.
    pub fn status(&self) -> Status {
        match self {
            TransportError::Io(_) | TransportError::Closed => Status::ConnectionClosed,
            TransportError::BadMagic { .. } => Status::BadMagic,
            TransportError::VersionMismatch { .. } => Status::VersionMismatch,
            TransportError::FrameTooLarge { .. } => Status::FrameTooLarge,
            TransportError::Malformed { .. } | TransportError::Encode(_) => Status::MalformedFrame,
            TransportError::Refused { status, .. } => *status,
            TransportError::Timeout(_) => Status::Timeout,
        }
    }
}
