//! The latency peer: memcached on loopback, driven by a tiny text-protocol client written here.
//!
//! The client is as lean as a client can be (one reusable buffer, one `write` per request, no
//! allocation per GET), so the comparison with hoard is against memcached at its best: what is
//! left is the server and the loopback round trip.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use rand::{RngCore, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::cli::IO_BYTES;
use crate::procs::{ChildGuard, free_addr, require_tool};

/// Distinct keys stored (16 MiB of 4 KiB values).
pub const KEYS: u64 = 4096;

/// A running memcached with [`KEYS`] values of 4 KiB stored, and a connection to it.
#[derive(Debug)]
pub struct Memcached {
    /// The connection the benchmark uses.
    pub client: MemcachedClient,
    /// Each key's value, to check what GET returns during the warm-up.
    values: Vec<Vec<u8>>,
    server: ChildGuard,
}

impl Memcached {
    /// Start `memcached -l 127.0.0.1 -p PORT -m 2048 -U 0 -t 2`, connect, and SET every key.
    ///
    /// # Errors
    /// When memcached is not installed, does not start, or misbehaves.
    pub async fn start(dir: &Path) -> anyhow::Result<Memcached> {
        let program = require_tool("memcached", "memcached")?;
        let addr = free_addr()?;
        let mut command = Command::new(program);
        command.args([
            "-l",
            "127.0.0.1",
            "-p",
            &addr.port().to_string(),
            "-m",
            "2048",
            "-U",
            "0",
            "-t",
            "2",
        ]);
        if running_as_root() {
            command.args(["-u", "root"]);
        }
        let mut server = ChildGuard::spawn("memcached", command, &dir.join("memcached.log"))?;
        server.wait_listening(addr, Duration::from_secs(10)).await?;
        let mut client = MemcachedClient::connect(addr).await?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x6d63);
        let mut values = Vec::with_capacity(KEYS as usize);
        for k in 0..KEYS {
            let mut value = vec![0u8; IO_BYTES as usize];
            rng.fill_bytes(&mut value);
            client.set(k, &value).await.with_context(|| format!("SET key {k}"))?;
            values.push(value);
        }
        Ok(Memcached { client, values, server })
    }

    /// memcached's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// GET key `k` and check the value is the one stored.
    ///
    /// # Errors
    /// When the GET fails or returns other bytes.
    pub async fn get_checked(&mut self, k: u64) -> anyhow::Result<()> {
        let got = self.client.get(k).await?;
        ensure!(
            got == self.values[k as usize].as_slice(),
            "memcached returned wrong bytes for key {k}"
        );
        Ok(())
    }
}

/// One text-protocol connection to memcached.
#[derive(Debug)]
pub struct MemcachedClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    request: Vec<u8>,
    line: Vec<u8>,
    value: Vec<u8>,
}

impl MemcachedClient {
    /// Connect with `TCP_NODELAY`.
    ///
    /// # Errors
    /// When the connection fails.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<MemcachedClient> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to memcached at {addr}"))?;
        stream.set_nodelay(true).context("set TCP_NODELAY")?;
        let (read, writer) = stream.into_split();
        let reader = BufReader::with_capacity(64 << 10, read);
        Ok(MemcachedClient {
            reader,
            writer,
            request: Vec::with_capacity(8 << 10),
            line: Vec::new(),
            value: Vec::new(),
        })
    }

    /// `set k<N> 0 0 <len>` with this value.
    ///
    /// # Errors
    /// I/O errors, or a reply other than `STORED`.
    pub async fn set(&mut self, k: u64, value: &[u8]) -> anyhow::Result<()> {
        self.request.clear();
        self.request
            .extend_from_slice(format!("set k{k} 0 0 {}\r\n", value.len()).as_bytes());
        self.request.extend_from_slice(value);
        self.request.extend_from_slice(b"\r\n");
        self.writer.write_all(&self.request).await.context("send a SET")?;
        self.read_line().await?;
        ensure!(
            self.line == b"STORED\r\n",
            "SET answered {:?}",
            String::from_utf8_lossy(&self.line)
        );
        Ok(())
    }

    /// `get k<N>`: the value (borrowed until the next call).
    ///
    /// # Errors
    /// I/O errors, a miss, or a malformed reply.
    pub async fn get(&mut self, k: u64) -> anyhow::Result<&[u8]> {
        self.request.clear();
        self.request.extend_from_slice(b"get k");
        push_decimal(&mut self.request, k);
        self.request.extend_from_slice(b"\r\n");
        self.writer.write_all(&self.request).await.context("send a GET")?;
        self.read_line().await?;
        let len = parse_value_header(&self.line)?;
        self.value.resize(len + 2, 0);
        self.reader
            .read_exact(&mut self.value)
            .await
            .context("read a GET value")?;
        ensure!(self.value.ends_with(b"\r\n"), "GET value is not followed by CRLF");
        self.read_line().await?;
        ensure!(
            self.line == b"END\r\n",
            "GET ends with {:?}",
            String::from_utf8_lossy(&self.line)
        );
        Ok(&self.value[..len])
    }

    async fn read_line(&mut self) -> anyhow::Result<()> {
        self.line.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.line)
            .await
            .context("read a reply line")?;
        if n == 0 {
            bail!("memcached closed the connection");
        }
        Ok(())
    }
}

/// The byte count of `VALUE <key> <flags> <bytes>\r\n`.
fn parse_value_header(line: &[u8]) -> anyhow::Result<usize> {
    let text = std::str::from_utf8(line).context("parse a GET reply header")?;
    let mut words = text.trim_end().split(' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("VALUE"), Some(_key), Some(_flags), Some(bytes)) => bytes.parse().context("parse a GET byte count"),
        _ => bail!("GET answered {text:?} (a miss?)"),
    }
}

/// Append `n` in decimal without allocating.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Whether this process runs as root (memcached then needs `-u root`).
fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        == Some("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_and_decimals() {
        assert_eq!(parse_value_header(b"VALUE k12 0 4096\r\n").expect("valid"), 4096);
        assert!(parse_value_header(b"END\r\n").is_err());
        let mut out = Vec::new();
        push_decimal(&mut out, 0);
        out.push(b' ');
        push_decimal(&mut out, 40_961);
        assert_eq!(out, b"0 40961");
    }
}
