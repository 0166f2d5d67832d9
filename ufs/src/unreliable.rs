//! [`UnreliableStore`]: a wrapper that makes an under-store slow, failing and observable.
//!
//! Retry loops, timeouts and single-flight fills are only tested when the under-store misbehaves
//! on demand and tests can count what reached it. Following the house rule "wrappers, not flags",
//! this wraps any [`UnderStore`] instead of adding failure switches to the real stores.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use crate::{CompletedPart, ListPage, ListRequest, Metadata, ObjectMeta, UfsError, UfsResult, UnderStore};

/// The operations of [`UnderStore`], by method name, in declaration order.
const OPS: [&str; 11] = [
    "stat",
    "read_range",
    "list",
    "put",
    "create_multipart",
    "upload_part",
    "upload_part_copy",
    "complete_multipart",
    "abort_multipart",
    "delete",
    "copy",
];

/// Wraps an under-store: optionally fails every Nth call with a retryable [`UfsError::Remote`],
/// optionally delays every call, and counts the calls of each operation (failed ones included).
///
/// # Example
/// ```
/// # async fn demo() {
/// use std::sync::Arc;
/// use hoard_ufs::{InMemoryStore, UnderStore, UnreliableStore};
/// let store = UnreliableStore::new(Arc::new(InMemoryStore::new())).fail_every(2);
/// let first = store.stat("missing").await.expect_err("call 1 reaches the store");
/// assert!(first.is_not_found());
/// let second = store.stat("missing").await.expect_err("call 2 is failed by the wrapper");
/// assert!(second.is_retryable());
/// assert_eq!(store.calls("stat"), 2);
/// # }
/// ```
#[derive(Debug)]
pub struct UnreliableStore {
    inner: Arc<dyn UnderStore>,
    /// 0: never fail.
    fail_every: AtomicU64,
    delay: Mutex<Option<Duration>>,
    /// Calls of all operations, which `fail_every` counts.
    total: AtomicU64,
    /// Calls per operation, indexed as [`OPS`].
    calls: [AtomicU64; OPS.len()],
}

impl UnreliableStore {
    /// Wraps `inner`, passing every call through unchanged until configured otherwise.
    pub fn new(inner: Arc<dyn UnderStore>) -> Self {
        Self {
            inner,
            fail_every: AtomicU64::new(0),
            delay: Mutex::new(None),
            total: AtomicU64::new(0),
            calls: Default::default(),
        }
    }

    /// Fails every `n`th call (counting all operations together; `0` never fails).
    pub fn fail_every(self, n: u64) -> Self {
        self.set_fail_every(n);
        self
    }

    /// Sleeps `delay` before every call is passed on (or failed).
    pub fn with_delay(self, delay: Duration) -> Self {
        self.set_delay(Some(delay));
        self
    }

    /// Changes the failure rate while in use (`0` stops failing).
    pub fn set_fail_every(&self, n: u64) {
        self.fail_every.store(n, Ordering::Relaxed);
    }

    /// Changes the delay while in use (`None` removes it).
    pub fn set_delay(&self, delay: Option<Duration>) {
        *self.delay.lock() = delay;
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn UnderStore> {
        &self.inner
    }

    /// Calls of operation `op` so far, `op` being an [`UnderStore`] method name (`"read_range"`).
    ///
    /// # Panics
    /// When `op` is not the name of an [`UnderStore`] method.
    pub fn calls(&self, op: &str) -> u64 {
        self.calls[op_index(op)].load(Ordering::Relaxed)
    }

    /// Calls of all operations so far.
    pub fn total_calls(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Calls of [`UnderStore::stat`] so far.
    pub fn stat_calls(&self) -> u64 {
        self.calls("stat")
    }

    /// Calls of [`UnderStore::read_range`] so far.
    pub fn read_range_calls(&self) -> u64 {
        self.calls("read_range")
    }

    /// Calls of [`UnderStore::list`] so far.
    pub fn list_calls(&self) -> u64 {
        self.calls("list")
    }

    /// Calls of [`UnderStore::put`] so far.
    pub fn put_calls(&self) -> u64 {
        self.calls("put")
    }

    /// Counts a call of `op`, waits the delay, and fails it when its turn has come.
    async fn enter(&self, op: &'static str, path: &str) -> UfsResult<()> {
        let index = op_index(op);
        self.calls[index].fetch_add(1, Ordering::Relaxed);
        let call = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let delay = *self.delay.lock();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let every = self.fail_every.load(Ordering::Relaxed);
        if every != 0 && call.is_multiple_of(every) {
            return Err(UfsError::Remote {
                op,
                path: path.to_owned(),
                source: Box::new(std::io::Error::other(format!("injected failure of call {call}"))),
                retryable: true,
            });
        }
        Ok(())
    }
}

/// The index in [`OPS`] of operation `op`.
///
/// # Panics
/// When `op` is not the name of an [`UnderStore`] method.
fn op_index(op: &str) -> usize {
    let index = OPS.iter().position(|o| *o == op);
    index.unwrap_or_else(|| panic!("{op:?} is not an UnderStore method; one of {OPS:?}"))
}

#[async_trait]
impl UnderStore for UnreliableStore {
    async fn stat(&self, path: &str) -> UfsResult<ObjectMeta> {
        self.enter("stat", path).await?;
        self.inner.stat(path).await
    }

    async fn read_range(&self, path: &str, range: Range<u64>, version: Option<&str>) -> UfsResult<Bytes> {
        self.enter("read_range", path).await?;
        self.inner.read_range(path, range, version).await
    }

    async fn list(&self, req: &ListRequest) -> UfsResult<ListPage> {
        self.enter("list", &req.prefix).await?;
        self.inner.list(req).await
    }

    async fn put_with(&self, path: &str, data: Bytes, metadata: &Metadata) -> UfsResult<ObjectMeta> {
        self.enter("put", path).await?;
        self.inner.put_with(path, data, metadata).await
    }

    async fn create_multipart_with(&self, path: &str, metadata: &Metadata) -> UfsResult<String> {
        self.enter("create_multipart", path).await?;
        self.inner.create_multipart_with(path, metadata).await
    }

    async fn upload_part(
        &self,
        path: &str,
        upload_id: &str,
        part_number: u32,
        data: Bytes,
    ) -> UfsResult<CompletedPart> {
        self.enter("upload_part", path).await?;
        self.inner.upload_part(path, upload_id, part_number, data).await
    }

    async fn upload_part_copy(
        &self,
        path: &str,
        upload_id: &str,
        part_number: u32,
        src: &str,
        range: Range<u64>,
        src_version: Option<&str>,
    ) -> UfsResult<CompletedPart> {
        self.enter("upload_part_copy", path).await?;
        (self.inner)
            .upload_part_copy(path, upload_id, part_number, src, range, src_version)
            .await
    }

    async fn complete_multipart(
        &self,
        path: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> UfsResult<ObjectMeta> {
        self.enter("complete_multipart", path).await?;
        self.inner.complete_multipart(path, upload_id, parts).await
    }

    async fn abort_multipart(&self, path: &str, upload_id: &str) -> UfsResult<()> {
        self.enter("abort_multipart", path).await?;
        self.inner.abort_multipart(path, upload_id).await
    }

    async fn delete(&self, path: &str) -> UfsResult<()> {
        self.enter("delete", path).await?;
        self.inner.delete(path).await
    }

    async fn copy_with(&self, src: &str, dst: &str, metadata: Option<&Metadata>) -> UfsResult<ObjectMeta> {
        self.enter("copy", dst).await?;
        self.inner.copy_with(src, dst, metadata).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryStore;

    fn wrapped() -> UnreliableStore {
        UnreliableStore::new(Arc::new(InMemoryStore::new()))
    }

    #[tokio::test]
    async fn passes_calls_through_and_counts_them() {
        let store = wrapped();
        store.put("k", Bytes::from_static(b"abc")).await.expect("put");
        let bytes = store.read_range("k", 1..3, None).await.expect("read");
        assert_eq!(&bytes[..], b"bc");
        store.read_range("k", 0..1, None).await.expect("read");
        assert_eq!(store.put_calls(), 1);
        assert_eq!(store.read_range_calls(), 2);
        assert_eq!(store.calls("stat"), 0);
        assert_eq!(store.total_calls(), 3);
    }

    #[tokio::test]
    async fn fails_every_nth_call_with_a_retryable_error() {
        let store = wrapped().fail_every(3);
        store.put("k", Bytes::from_static(b"abc")).await.expect("call 1");
        store.stat("k").await.expect("call 2");
        let err = store.stat("k").await.expect_err("call 3 fails");
        assert!(err.is_retryable(), "{err:?}");
        assert!(matches!(err, UfsError::Remote { op: "stat", .. }), "{err:?}");
        store.stat("k").await.expect("call 4");
        store.set_fail_every(0);
        for _ in 0..5 {
            store.stat("k").await.expect("no more failures");
        }
        assert_eq!(store.stat_calls(), 8);
    }

    #[tokio::test]
    async fn copied_parts_are_counted_and_failed_like_other_calls() {
        let store = wrapped();
        store.put("src", Bytes::from_static(b"0123456789")).await.expect("put");
        let id = store.create_multipart("dst").await.expect("create_multipart");
        store.set_fail_every(2);
        let part = store
            .upload_part_copy("dst", &id, 1, "src", 2..5, None)
            .await
            .expect("call 3 reaches the store");
        let err = store
            .upload_part_copy("dst", &id, 2, "src", 5..10, None)
            .await
            .expect_err("call 4 is failed by the wrapper");
        assert!(
            matches!(
                err,
                UfsError::Remote {
                    op: "upload_part_copy",
                    ..
                }
            ),
            "{err:?}"
        );
        let err = store
            .upload_part_copy("dst", &id, 2, "src", 5..11, None)
            .await
            .expect_err("a range past the source's end");
        assert!(matches!(err, UfsError::Invalid { .. }), "{err:?}");
        store.set_fail_every(0);
        let meta = store
            .complete_multipart("dst", &id, vec![part])
            .await
            .expect("complete");
        assert_eq!(
            &store.read_range("dst", 0..10, Some(&meta.version)).await.expect("read")[..],
            b"234"
        );
        assert_eq!(store.calls("upload_part_copy"), 3);
        assert_eq!(store.total_calls(), 7);
    }

    #[tokio::test]
    async fn delays_every_call() {
        let store = wrapped().with_delay(Duration::from_millis(100));
        let start = std::time::Instant::now();
        let err = store.stat("missing").await.expect_err("missing");
        assert!(err.is_not_found());
        assert!(start.elapsed() >= Duration::from_millis(100));
        store.set_delay(None);
        let start = std::time::Instant::now();
        store.stat("missing").await.expect_err("missing");
        assert!(start.elapsed() < Duration::from_millis(100));
    }

    #[test]
    #[should_panic(expected = "not an UnderStore method")]
    fn unknown_operation_names_panic() {
        wrapped().calls("get");
    }
}
