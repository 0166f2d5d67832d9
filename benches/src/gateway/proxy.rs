//! A TCP proxy that delays every byte by a fixed time in each direction, so that a server on
//! loopback answers as late as a distant one (this kernel has no `netem`), and optionally paces
//! each connection to a bandwidth, as S3 serves one connection (about 100 MB/s per GET, which is
//! why S3 clients fetch large objects with parallel ranged GETs). Bytes keep their order: each
//! read is forwarded once its delay has passed and its connection's pace allows, however many
//! are in flight, so a request's round trip grows by twice the one-way delay.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Reads in flight per direction (64 KiB each): the most bytes the proxy holds back.
const IN_FLIGHT: usize = 2048;

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct DelayProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl DelayProxy {
    /// Listen on a loopback port and forward every connection to `upstream`, each direction
    /// `round_trip / 2` late and, with `bytes_per_second`, each direction of each connection
    /// paced to it.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(
        upstream: SocketAddr,
        round_trip: Duration,
        bytes_per_second: Option<u64>,
    ) -> anyhow::Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("bind the delay proxy")?;
        let addr = listener.local_addr()?;
        let link = Link {
            one_way: round_trip / 2,
            bytes_per_second,
        };
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Err(e) = connect(client, upstream, link).await {
                        eprintln!("delay proxy: connection to {upstream} failed: {e:#}");
                    }
                });
            }
        });
        Ok(DelayProxy { addr, accept })
    }
}

/// What a direction of a connection adds: a delay, and a pace.
#[derive(Debug, Clone, Copy)]
struct Link {
    one_way: Duration,
    bytes_per_second: Option<u64>,
}

impl Link {
    /// When `len` bytes read now may be forwarded, after the bytes before them were due at
    /// `previous`.
    fn due(&self, now: Instant, previous: Instant, len: usize) -> Instant {
        let arrived = now + self.one_way;
        match self.bytes_per_second {
            Some(rate) => arrived.max(previous + Duration::from_secs_f64(len as f64 / rate as f64)),
            None => arrived,
        }
    }
}

async fn connect(client: TcpStream, upstream: SocketAddr, link: Link) -> anyhow::Result<()> {
    let server = TcpStream::connect(upstream).await.context("connect upstream")?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = tokio::spawn(pump(client_read, server_write, link));
    let down = tokio::spawn(pump(server_read, client_write, link));
    let _ = tokio::join!(up, down);
    Ok(())
}

/// Forward `from` to `to`, each read when the link lets it through; end `to` when `from` ends.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, link: Link) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(IN_FLIGHT);
    let writer = tokio::spawn(async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut previous = Instant::now();
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let due = link.due(Instant::now(), previous, n);
                previous = due;
                if tx.send((due, Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_arrive_in_order_and_late() -> anyhow::Result<()> {
        let echo = TcpListener::bind("127.0.0.1:0").await?;
        let upstream = echo.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = DelayProxy::start(upstream, Duration::from_millis(40), None).await?;
        let mut s = TcpStream::connect(proxy.addr).await?;
        let started = std::time::Instant::now();
        s.write_all(b"ping-1").await?;
        s.write_all(b"ping-2").await?;
        let mut got = vec![0u8; 12];
        s.read_exact(&mut got).await?;
        assert_eq!(&got, b"ping-1ping-2");
        assert!(
            started.elapsed() >= Duration::from_millis(40),
            "{:?}",
            started.elapsed()
        );
        Ok(())
    }
}
