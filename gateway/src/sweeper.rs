//! The sweeper: multipart uploads left longer than `gateway.multipart_expiry` are aborted, and
//! parts left without an upload record (an UploadPart that raced the completion or abort of its
//! upload) are removed once nothing has written to them for an hour. Staged bytes count against
//! the mount's capacity for them, so uploads clients abandon must not stay for good. Every gateway
//! of a cluster sweeps; removing what another gateway removed first is harmless.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use s3s::S3ErrorCode;
use tokio_util::sync::CancellationToken;

use crate::metrics;
use crate::service::Gateway;

/// Parts without an upload record are removed this long after their last write.
const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

/// Sweep until `stop` is cancelled.
pub(crate) async fn run(gateway: Gateway, stop: CancellationToken) {
    let expiry = gateway.inner.settings.multipart_expiry;
    let every = (expiry / 8).clamp(Duration::from_secs(60), Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let mut buckets: Vec<String> = gateway.inner.anonymous.keys().cloned().collect();
        buckets.sort();
        for bucket in buckets {
            let removed = sweep(&gateway, &bucket, expiry, ORPHAN_GRACE).await;
            if removed > 0 {
                tracing::info!(bucket, removed, "abandoned multipart uploads removed");
                metrics::expired(removed);
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One sweep of a bucket; returns how many uploads (or orphaned part sets) it removed.
pub(crate) async fn sweep(gateway: &Gateway, bucket: &str, expiry: Duration, grace: Duration) -> u64 {
    let ids = match gateway.upload_ids(bucket).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(
                bucket,
                "could not list multipart uploads to sweep: {}",
                e.message().unwrap_or("")
            );
            return 0;
        }
    };
    let now = now_ms();
    let mut removed = 0;
    for id in ids {
        let stale = match gateway.upload_info(bucket, None, &id).await {
            Ok(info) => now.saturating_sub(info.initiated_ms) > expiry.as_millis() as u64,
            Err(e) if e.code() == &S3ErrorCode::NoSuchUpload => {
                // No record: parts of an upload completed or aborted under a racing UploadPart.
                match gateway.newest_part_ms(bucket, &id).await {
                    Some(newest) => now.saturating_sub(newest) > grace.as_millis() as u64,
                    None => false,
                }
            }
            Err(_) => false,
        };
        if stale {
            gateway.remove_upload(bucket, &id).await;
            removed += 1;
        }
    }
    removed
}
