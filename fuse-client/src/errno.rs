//! The one place where client errors become errno values.
//!
//! Every FUSE operation that fails because of a [`ClientError`] answers with [`errno`]. Keeping
//! the mapping in one function (as mountpoint-s3's `fs/error.rs` does) means an application sees
//! the same errno for the same cause whatever call met it, and the table in `docs/fuse.md` can be
//! checked against a single match.

use fuser::Errno;
use hoard_client::ClientError;
use hoard_transport::wire::Status;

/// What the failed call was doing, for the statuses whose errno depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Opening, creating or writing a file: a directory in the way is `EISDIR`.
    WriteFile,
    /// Renaming a directory: a file in the way is `ENOTDIR`.
    RenameDir,
    /// Renaming a file: a directory in the way is `EISDIR`.
    RenameFile,
    /// Anything else.
    Other,
}

/// The errno an application sees for a failed client call.
pub fn errno(e: &ClientError, op: Op) -> Errno {
    match e {
        ClientError::NotFound { .. } | ClientError::NoSuchMount { .. } => Errno::ENOENT,
        ClientError::AlreadyExists { .. } => Errno::EEXIST,
        ClientError::InvalidPath { .. } => Errno::EINVAL,
        ClientError::Changed { .. } => Errno::ESTALE,
        ClientError::Worker { status, .. } => status_errno(*status, op),
        ClientError::Ufs(u) if u.is_not_found() => Errno::ENOENT,
        // Unavailable, Unstable, Ufs, Config and whatever a later client version adds.
        _ => Errno::EIO,
    }
}

/// The errno of a worker's refusal.
fn status_errno(status: Status, op: Op) -> Errno {
    match status {
        Status::NotFound => Errno::ENOENT,
        Status::AlreadyExists => Errno::EEXIST,
        Status::NoSpace => Errno::ENOSPC,
        Status::NotEmpty => Errno::ENOTEMPTY,
        Status::NotADirectory => match op {
            Op::WriteFile | Op::RenameFile => Errno::EISDIR,
            Op::RenameDir | Op::Other => Errno::ENOTDIR,
        },
        Status::InvalidArgument => Errno::EINVAL,
        Status::StaleVersion => Errno::ESTALE,
        Status::Timeout => Errno::ETIMEDOUT,
        Status::Unsupported => Errno::ENOTSUP,
        // A lost write session (coordinator restart), an internal error, the under-store
        // failing, transport trouble: the bytes did not make it.
        _ => Errno::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(status: Status) -> ClientError {
        ClientError::Worker {
            status,
            message: String::new(),
        }
    }

    #[test]
    fn client_errors_map_to_their_errno() {
        let path = || "/m/x".to_owned();
        assert_eq!(errno(&ClientError::NotFound { path: path() }, Op::Other), Errno::ENOENT);
        assert_eq!(
            errno(&ClientError::NoSuchMount { mount: path() }, Op::Other),
            Errno::ENOENT
        );
        assert_eq!(
            errno(&ClientError::AlreadyExists { path: path() }, Op::Other),
            Errno::EEXIST
        );
        assert_eq!(errno(&ClientError::Changed { path: path() }, Op::Other), Errno::ESTALE);
        assert_eq!(errno(&ClientError::Unstable { path: path() }, Op::Other), Errno::EIO);
        let invalid = ClientError::InvalidPath {
            path: path(),
            reason: "x",
        };
        assert_eq!(errno(&invalid, Op::Other), Errno::EINVAL);
        let unavailable = ClientError::Unavailable {
            path: path(),
            source: "down".into(),
        };
        assert_eq!(errno(&unavailable, Op::Other), Errno::EIO);
    }

    #[test]
    fn worker_statuses_map_to_their_errno() {
        assert_eq!(errno(&worker(Status::NoSpace), Op::WriteFile), Errno::ENOSPC);
        assert_eq!(errno(&worker(Status::NotEmpty), Op::Other), Errno::ENOTEMPTY);
        assert_eq!(errno(&worker(Status::NotFound), Op::Other), Errno::ENOENT);
        assert_eq!(errno(&worker(Status::AlreadyExists), Op::Other), Errno::EEXIST);
        assert_eq!(errno(&worker(Status::InvalidArgument), Op::Other), Errno::EINVAL);
        assert_eq!(errno(&worker(Status::NoSuchSession), Op::WriteFile), Errno::EIO);
        assert_eq!(errno(&worker(Status::UfsError), Op::Other), Errno::EIO);
        assert_eq!(errno(&worker(Status::Unsupported), Op::Other), Errno::ENOTSUP);
    }

    #[test]
    fn a_directory_in_the_way_depends_on_the_call() {
        let e = worker(Status::NotADirectory);
        assert_eq!(errno(&e, Op::WriteFile), Errno::EISDIR);
        assert_eq!(errno(&e, Op::RenameFile), Errno::EISDIR);
        assert_eq!(errno(&e, Op::RenameDir), Errno::ENOTDIR);
        assert_eq!(errno(&e, Op::Other), Errno::ENOTDIR);
    }
}
