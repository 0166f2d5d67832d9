//! From the SDK's errors to [`UfsError`]: what is missing, what changed, what to retry.
//!
//! Callers decide between retrying, falling back and giving up on [`UfsError`] alone, so this is
//! where S3's status codes and error codes are read, once. The whole SDK error is kept as the
//! source, so logs still show the service's code, message and request id.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::UfsError;

/// Error codes of requests that S3 rejects for their content (a bad part list, a copy range past
/// the source's end), not for the state of the store.
const INVALID_REQUEST_CODES: [&str; 4] = ["InvalidPart", "InvalidPartOrder", "EntityTooSmall", "InvalidRange"];

/// Error codes that say "slow down" or "try again" whatever the HTTP status.
const RETRYABLE_CODES: [&str; 7] = [
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
];

/// The HTTP status of the response that failed the request, if one arrived.
pub(super) fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// Maps a failed request `op` on `path` (sent with `If-Match: version` when given).
pub(super) fn classify<E>(
    op: &'static str,
    path: &str,
    version: Option<&str>,
    err: SdkError<E, HttpResponse>,
) -> UfsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = status(&err);
    let code = err.code();
    if let Some(expected) = version
        && (status == Some(412) || code == Some("PreconditionFailed"))
    {
        return UfsError::VersionMismatch {
            path: path.to_owned(),
            expected: expected.to_owned(),
        };
    }
    let missing = matches!(code, Some("NoSuchKey" | "NoSuchUpload" | "NotFound"));
    if (status == Some(404) || missing) && code != Some("NoSuchBucket") {
        return UfsError::NotFound { path: path.to_owned() };
    }
    if let Some(code) = code.filter(|c| INVALID_REQUEST_CODES.contains(c)) {
        let reason = format!("{code}: {}", err.message().unwrap_or("rejected by the server"));
        return UfsError::Invalid {
            path: path.to_owned(),
            reason,
        };
    }
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(_) => {
            status.is_some_and(|s| s >= 500 || s == 429) || code.is_some_and(|c| RETRYABLE_CODES.contains(&c))
        }
        _ => false,
    };
    UfsError::Remote {
        op,
        path: path.to_owned(),
        source: Box::new(err),
        retryable,
    }
}

/// A failure while receiving a response body (the connection broke): worth retrying.
pub(super) fn body_error(op: &'static str, path: &str, err: aws_sdk_s3::primitives::ByteStreamError) -> UfsError {
    UfsError::Remote {
        op,
        path: path.to_owned(),
        source: Box::new(err),
        retryable: true,
    }
}

/// A failure described by `message` alone.
pub(super) fn remote(op: &'static str, path: &str, message: String, retryable: bool) -> UfsError {
    UfsError::Remote {
        op,
        path: path.to_owned(),
        source: message.into(),
        retryable,
    }
}

/// A response that lacks a field S3 always sends: the server is not S3-compatible enough.
pub(super) fn missing_field(op: &'static str, path: &str, field: &str) -> UfsError {
    remote(op, path, format!("the response has no {field}"), false)
}
