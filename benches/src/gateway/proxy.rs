//! A TCP proxy that delays every byte by a fixed time in each direction, so that a server on
//! loopback answers as late as a distant one (this kernel has no `netem`). Bytes keep their order
//! and are not throttled: each read is forwarded once its delay has passed, however many are in
//! flight, so a request's round trip grows by twice the one-way delay and bandwidth stays the
//! server's.

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
    /// `round_trip / 2` late.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(upstream: SocketAddr, round_trip: Duration) -> anyhow::Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("bind the delay proxy")?;
        let addr = listener.local_addr()?;
        let one_way = round_trip / 2;
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Err(e) = connect(client, upstream, one_way).await {
                        eprintln!("delay proxy: connection to {upstream} failed: {e:#}");
                    }
                });
            }
        });
        Ok(DelayProxy { addr, accept })
    }
}

async fn connect(client: TcpStream, upstream: SocketAddr, one_way: Duration) -> anyhow::Result<()> {
    let server = TcpStream::connect(upstream).await.context("connect upstream")?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = tokio::spawn(pump(client_read, server_write, one_way));
    let down = tokio::spawn(pump(server_read, client_write, one_way));
    let _ = tokio::join!(up, down);
    Ok(())
}

/// Forward `from` to `to`, each read `delay` after it arrived; end `to` when `from` ends.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
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
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let due = Instant::now() + delay;
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
        let proxy = DelayProxy::start(upstream, Duration::from_millis(40)).await?;
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
