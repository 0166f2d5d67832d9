//! hoard's failures as S3 errors: the one place a client error gets an S3 error code.
//!
//! SDKs retry 500 and 503 answers and give up on 4xx, so the split matters: a dead worker or an
//! unreachable under-store is `ServiceUnavailable` (retried), a full journal is `SlowDown`
//! (retried after a back-off, while the persister drains it), an under-store that refuses for
//! good (credentials, permissions) is `InternalError`, a bad key is `InvalidArgument`.

use hoard_client::ClientError;
use hoard_transport::wire::Status;
use s3s::{S3Error, S3ErrorCode};

/// What a request names, which decides the code of "not found".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    /// An object (`NoSuchKey`).
    Object,
    /// A multipart upload (`NoSuchUpload`).
    Upload,
}

/// The S3 error for a failed client call.
pub(crate) fn from_client(e: &ClientError, subject: Subject) -> S3Error {
    let message = chain(e);
    let not_found = match subject {
        Subject::Object => S3ErrorCode::NoSuchKey,
        Subject::Upload => S3ErrorCode::NoSuchUpload,
    };
    let code = match e {
        e if e.is_not_found() => not_found,
        ClientError::NoSuchMount { .. } => S3ErrorCode::NoSuchBucket,
        ClientError::InvalidPath { .. } => S3ErrorCode::InvalidArgument,
        ClientError::AlreadyExists { .. } | ClientError::Changed { .. } => S3ErrorCode::PreconditionFailed,
        ClientError::Ufs(u) if u.is_permanent() => S3ErrorCode::InternalError,
        ClientError::Unavailable { .. } | ClientError::Ufs(_) | ClientError::Unstable { .. } => {
            S3ErrorCode::ServiceUnavailable
        }
        ClientError::Worker { status, .. } => from_status(*status, not_found),
        _ => S3ErrorCode::InternalError,
    };
    S3Error::with_message(code, message)
}

fn from_status(status: Status, not_found: S3ErrorCode) -> S3ErrorCode {
    match status {
        Status::NotFound => not_found,
        Status::InvalidArgument | Status::NotADirectory | Status::NotEmpty => S3ErrorCode::InvalidArgument,
        Status::AlreadyExists | Status::StaleVersion => S3ErrorCode::PreconditionFailed,
        Status::NoSpace | Status::Overloaded => S3ErrorCode::SlowDown,
        // The under-store refused for good (credentials, permissions): a server fault, not one
        // a retry mends soon.
        Status::UfsError => S3ErrorCode::InternalError,
        Status::Timeout
        | Status::UfsUnavailable
        | Status::ShuttingDown
        | Status::NotCoordinator
        | Status::NoSuchSession => S3ErrorCode::ServiceUnavailable,
        Status::Unsupported => S3ErrorCode::NotImplemented,
        _ => S3ErrorCode::InternalError,
    }
}

/// An error of a request body stream (s3s's own errors are private types: they are told
/// apart by their text).
pub(crate) fn from_body(e: &(dyn std::error::Error + 'static)) -> S3Error {
    let text = chain(e);
    if text.contains("SignatureMismatch") {
        return S3Error::with_message(S3ErrorCode::SignatureDoesNotMatch, text);
    }
    if text.contains("Sha256Mismatch") {
        let mut err = S3Error::with_message(S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()), text);
        err.set_status_code(hyper::StatusCode::BAD_REQUEST);
        return err;
    }
    S3Error::with_message(
        S3ErrorCode::IncompleteBody,
        format!("the request body ended early or was malformed: {text}"),
    )
}

/// An error and its causes, `: `-joined.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// Log a failed request where it is handled: server faults at WARN (the gateway goes on
/// serving), client mistakes at DEBUG.
pub(crate) fn log(op: &str, bucket: &str, key: &str, e: &S3Error) {
    let status = e.status_code().map_or(500, |s| s.as_u16());
    if status >= 500 {
        tracing::warn!(
            op,
            bucket,
            key,
            code = e.code().as_str(),
            "request failed: {}",
            e.message().unwrap_or("")
        );
    } else {
        tracing::debug!(
            op,
            bucket,
            key,
            code = e.code().as_str(),
            "request refused: {}",
            e.message().unwrap_or("")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_failures_are_5xx_and_mistakes_4xx() {
        let unavailable = ClientError::Unavailable {
            path: "/m/k".into(),
            source: "connection refused".into(),
        };
        let e = from_client(&unavailable, Subject::Object);
        assert_eq!(e.code(), &S3ErrorCode::ServiceUnavailable);
        assert!(
            e.message().is_some_and(|m| m.contains("connection refused")),
            "cause kept"
        );
        let full = ClientError::Worker {
            status: Status::NoSpace,
            message: "full".into(),
        };
        assert_eq!(from_client(&full, Subject::Object).code(), &S3ErrorCode::SlowDown);
        let missing = ClientError::NotFound { path: "/m/k".into() };
        assert_eq!(from_client(&missing, Subject::Object).code(), &S3ErrorCode::NoSuchKey);
        assert_eq!(
            from_client(&missing, Subject::Upload).code(),
            &S3ErrorCode::NoSuchUpload
        );
        let bucket = ClientError::NoSuchMount { mount: "x".into() };
        assert_eq!(from_client(&bucket, Subject::Object).code(), &S3ErrorCode::NoSuchBucket);
    }
}
