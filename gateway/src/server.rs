//! Serving the gateway over HTTP/1.1 and HTTP/2 (hyper), with bounded headers and a graceful
//! shutdown, and the sweeper of abandoned multipart uploads beside it.

use std::io;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics;
use crate::service::Gateway;
use crate::sweeper;

/// Most request headers (count).
const MAX_HEADERS: usize = 128;

/// A client must send its request headers within this.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long in-flight requests may finish after shutdown.
const DRAIN: Duration = Duration::from_secs(10);

/// Serve the gateway on `listener` until `shutdown` completes, then let requests in flight
/// finish (up to 10 s).
///
/// # Errors
/// When the gateway's settings are invalid (`gateway.domain`). Failed connections are logged and
/// do not end the server.
pub async fn serve(listener: TcpListener, gateway: Gateway, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let service = gateway.service().map_err(io::Error::other)?;
    let mut http = Builder::new(TokioExecutor::new());
    let header_bytes = gateway.inner.settings.max_header_bytes.as_u64() as usize;
    http.http1()
        .max_buf_size(header_bytes)
        .max_headers(MAX_HEADERS)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    http.http2()
        .max_header_list_size(u32::try_from(header_bytes).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    let stop = CancellationToken::new();
    let sweeping = tokio::spawn(sweeper::run(gateway.clone(), stop.clone()));
    tracing::info!(addr = %listener.local_addr()?, "S3 gateway listening");
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, "could not set TCP_NODELAY: {e}");
        }
        let service = service.clone();
        // Every answer counted by status, those s3s gives before an operation runs (a bad
        // signature, a malformed request) included.
        let counted = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let service = service.clone();
            async move {
                let response = hyper::service::Service::call(&service, req).await?;
                metrics::http_response(response.status().as_u16());
                Ok::<_, s3s::HttpError>(response)
            }
        });
        let conn = http.serve_connection(TokioIo::new(stream), counted).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    stop.cancel();
    let _ = sweeping.await;
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight {DRAIN:?} after shutdown were cut off");
    }
    Ok(())
}
