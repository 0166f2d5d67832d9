//! A minimal HTTP/1.1 client for presigned GETs on one kept-alive connection: what a request
//! costs the server and the network, without an SDK's per-request work (building, signing and
//! checking each request costs the AWS SDK several hundred microseconds, the same on both sides
//! of a comparison). The URLs are presigned once (SigV4, query string), so every request is still
//! signed and the server still checks every signature.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One connection to a server.
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
}

impl RawClient {
    /// Connect to `host` (`ip:port`).
    ///
    /// # Errors
    /// When the connection fails.
    pub async fn connect(host: &str) -> anyhow::Result<RawClient> {
        let stream = TcpStream::connect(host)
            .await
            .with_context(|| format!("connect to {host}"))?;
        stream.set_nodelay(true)?;
        Ok(RawClient {
            stream,
            host: host.to_owned(),
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// GET `path_and_query`, expecting 200 and `expected` as the body: (time to the first byte of
    /// the body, time to the last byte).
    ///
    /// # Errors
    /// A failed request, another status, or other bytes.
    pub async fn get(&mut self, path_and_query: &str, expected: &[u8]) -> anyhow::Result<(Duration, Duration)> {
        let started = Instant::now();
        let request = format!("GET {path_and_query} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.stream.write_all(request.as_bytes()).await?;
        self.buf.clear();
        let head_end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .context("response headers")?
            .to_owned();
        if !head.starts_with("HTTP/1.1 200") {
            bail!("GET {path_and_query}: {}", head.lines().next().unwrap_or(""));
        }
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .context("no Content-Length")?;
        if len > 0 && self.buf.len() == head_end {
            self.fill().await?;
        }
        let first = started.elapsed();
        while self.buf.len() < head_end + len {
            self.fill().await?;
        }
        ensure!(
            &self.buf[head_end..head_end + len] == expected,
            "GET {path_and_query}: wrong bytes"
        );
        Ok((first, started.elapsed()))
    }

    /// Time to the first body byte of a GET of `path_and_query` on a new connection, which is
    /// then dropped (the rest of a large body is not read).
    ///
    /// # Errors
    /// A failed request, or another status than 200.
    pub async fn first_byte(host: &str, path_and_query: &str) -> anyhow::Result<Duration> {
        let mut client = RawClient::connect(host).await?;
        let started = Instant::now();
        let request = format!("GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        client.stream.write_all(request.as_bytes()).await?;
        let head_end = loop {
            if let Some(at) = client.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            client.fill().await?;
        };
        ensure!(client.buf.starts_with(b"HTTP/1.1 200"), "GET {path_and_query}: not 200");
        if client.buf.len() == head_end {
            client.fill().await?;
        }
        Ok(started.elapsed())
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        ensure!(n > 0, "the server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}
