//! Every under-store request of the worker goes through here to be counted and timed.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hoard_ufs::UfsResult;

use crate::metrics;

/// Counts and times under-store requests.
#[derive(Debug, Default)]
pub struct UfsMeter {
    requests: AtomicU64,
}

impl UfsMeter {
    /// Run one under-store request, recording it under `op` (`stat`, `read`, `list`).
    pub async fn call<T>(&self, op: &'static str, request: impl Future<Output = UfsResult<T>>) -> UfsResult<T> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        ::metrics::counter!(metrics::UFS_REQUESTS, "op" => op).increment(1);
        let started = Instant::now();
        let result = request.await;
        let micros = started.elapsed().as_secs_f64() * 1e6;
        ::metrics::histogram!(metrics::UFS_LATENCY_US, "op" => op).record(micros);
        // A missing object is an answer, not a failure of the under-store.
        if result.as_ref().is_err_and(|e| !e.is_not_found()) {
            ::metrics::counter!(metrics::UFS_ERRORS, "op" => op).increment(1);
        }
        result
    }

    /// Requests made so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}
