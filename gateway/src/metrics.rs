//! The gateway's metrics, every name in one place (see `docs/metrics.md`). They go through the
//! `metrics` facade; the binary that serves the gateway installs the exporter.

use std::time::Duration;

/// Requests answered, by operation and outcome (`ok`, or the S3 error code; a multipart
/// completion answered while it runs counts `accepted`, then again when it ends). Stable.
pub const REQUESTS: &str = "gateway_requests";
/// Time to answer a request (for GET: until the body starts), by operation, in µs. Stable.
pub const REQUEST_LATENCY_US: &str = "gateway_request_latency_us";
/// Object bytes received in PUT and UploadPart bodies, and copied by UploadPartCopy and by
/// copies between mounts. Stable.
pub const BYTES_RECEIVED: &str = "gateway_bytes_received";
/// Object bytes sent in GET bodies. Stable.
pub const BYTES_SENT: &str = "gateway_bytes_sent";
/// HTTP answers by status code, requests s3s refuses before an operation runs included. Stable.
pub const HTTP_RESPONSES: &str = "gateway_http_responses";
/// Multipart uploads aborted because they were left longer than `gateway.multipart_expiry`, and
/// parts left without an upload, removed. Stable.
pub const UPLOADS_EXPIRED: &str = "gateway_uploads_expired";

pub(crate) fn record(op: &'static str, status: &str, elapsed: Duration) {
    metrics::counter!(REQUESTS, "op" => op, "status" => status.to_owned()).increment(1);
    metrics::histogram!(REQUEST_LATENCY_US, "op" => op).record(elapsed.as_secs_f64() * 1e6);
}

pub(crate) fn http_response(status: u16) {
    metrics::counter!(HTTP_RESPONSES, "status" => status.to_string()).increment(1);
}

pub(crate) fn bytes_in(n: u64) {
    metrics::counter!(BYTES_RECEIVED).increment(n);
}

pub(crate) fn bytes_out(n: usize) {
    metrics::counter!(BYTES_SENT).increment(n as u64);
}

pub(crate) fn expired(n: u64) {
    metrics::counter!(UPLOADS_EXPIRED).increment(n);
}
