//! Stable status codes carried by error replies.
//!
//! Ranges per subsystem: 0–999 common, 1000s transport, 2000s worker, 3000s under-store. A number
//! is never renumbered or reused; a retired code stays as a gap (comment it out, don't delete).

/// Why a request failed, as carried on the wire (as `u16`).
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// Success (never sent in an error reply).
    Ok = 0,
    /// A code this side does not know (a newer peer).
    Unknown = 1,
    /// The request is invalid (bad path, bad range, unknown mount).
    InvalidArgument = 2,
    /// The file or directory does not exist.
    NotFound = 3,
    /// The operation took too long.
    Timeout = 4,
    /// An internal error (a bug); the message says more.
    Internal = 5,
    /// The request kind is not supported by this peer.
    Unsupported = 6,

    /// A frame did not start with the magic number.
    BadMagic = 1000,
    /// The peer speaks an unsupported protocol version.
    VersionMismatch = 1001,
    /// The handshake's token is wrong.
    AuthFailed = 1002,
    /// A frame exceeded the size limit.
    FrameTooLarge = 1003,
    /// A message failed validation.
    MalformedFrame = 1004,
    /// The connection closed or failed.
    ConnectionClosed = 1005,
    /// A request came before the handshake.
    HandshakeRequired = 1006,

    /// The worker has too many requests in flight; try another.
    Overloaded = 2000,
    /// The file's version changed since the client's stat: stat again.
    StaleVersion = 2001,
    /// A page failed its checksum.
    ChecksumMismatch = 2002,
    /// The worker is shutting down.
    ShuttingDown = 2003,
    /// The path exists and the request asked it not to (exclusive create, mkdir over a file).
    AlreadyExists = 2004,
    /// The worker is not the coordinator of the mount this write names; the client's cluster
    /// config disagrees with the worker's.
    NotCoordinator = 2005,
    /// No space left: the journal's disk is full, or the mount's cache-only capacity is used up.
    NoSpace = 2006,
    /// The write session is unknown (never opened, finished, or lost with a worker restart).
    NoSuchSession = 2007,
    /// A file operation met a directory or the reverse (write or rename a file onto a
    /// directory's name, rename a directory onto a file).
    NotADirectory = 2008,
    /// The directory is not empty and the request was not recursive.
    NotEmpty = 2009,

    /// The under-store failed (retryable).
    UfsUnavailable = 3000,
    /// The under-store refused the request (permanent).
    UfsError = 3001,
}

impl Status {
    /// Every status, for tables and tests.
    pub const ALL: &'static [Status] = &[
        Status::Ok,
        Status::Unknown,
        Status::InvalidArgument,
        Status::NotFound,
        Status::Timeout,
        Status::Internal,
        Status::Unsupported,
        Status::BadMagic,
        Status::VersionMismatch,
        Status::AuthFailed,
        Status::FrameTooLarge,
        Status::MalformedFrame,
        Status::ConnectionClosed,
        Status::HandshakeRequired,
        Status::Overloaded,
        Status::StaleVersion,
        Status::ChecksumMismatch,
        Status::ShuttingDown,
        Status::AlreadyExists,
        Status::NotCoordinator,
        Status::NoSpace,
        Status::NoSuchSession,
        Status::NotADirectory,
        Status::NotEmpty,
        Status::UfsUnavailable,
        Status::UfsError,
    ];

    /// The status for a code read off the wire; unknown codes become [`Status::Unknown`].
    pub fn from_u16(code: u16) -> Status {
        Status::ALL
            .iter()
            .copied()
            .find(|s| *s as u16 == code)
            .unwrap_or(Status::Unknown)
    }

    /// Whether asking another worker (or the under-store) may succeed where this failed.
    pub fn is_retryable_elsewhere(self) -> bool {
        matches!(
            self,
            Status::Timeout
                | Status::Internal
                | Status::ConnectionClosed
                | Status::Overloaded
                | Status::ChecksumMismatch
                | Status::ShuttingDown
                | Status::UfsUnavailable
                | Status::Unknown
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_unique() {
        // These numbers are on the wire: changing one breaks mixed-version clusters.
        assert_eq!(Status::NotFound as u16, 3);
        assert_eq!(Status::AuthFailed as u16, 1002);
        assert_eq!(Status::StaleVersion as u16, 2001);
        assert_eq!(Status::UfsError as u16, 3001);
        let mut codes: Vec<u16> = Status::ALL.iter().map(|s| *s as u16).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Status::ALL.len());
        for s in Status::ALL {
            assert_eq!(Status::from_u16(*s as u16), *s);
        }
        assert_eq!(Status::from_u16(65535), Status::Unknown);
    }
}
