//! `hoard ls`, `stat`, `cat`: the read side of the file commands.

use std::path::Path;

use anyhow::Context;
use hoard_client::ListEntry;
use tokio::io::AsyncWriteExt;

use crate::cluster_file;

/// Bytes `cat` asks for at a time, so a huge file streams instead of filling memory.
const CAT_PIECE_BYTES: u64 = 64 << 20;

/// `hoard ls PATH`.
pub async fn ls(cluster: Option<&Path>, path: &str, recursive: bool) -> anyhow::Result<()> {
    let client = cluster_file::client(cluster)?;
    if path.trim_end_matches('/').is_empty() {
        for m in client.mounts() {
            println!("{:<20} {}", format!("{}/", m.name), m.ufs);
        }
        return Ok(());
    }
    let entries = client
        .list(path, recursive)
        .await
        .with_context(|| format!("list {path}"))?;
    for entry in entries {
        match entry {
            ListEntry::Prefix(p) => println!("{:>12}  {:<20}  {p}", "-", "-"),
            // The listed directory's own marker (`dir/`) is the directory, not an entry of it.
            ListEntry::File(f) if f.path.ends_with('/') => {}
            ListEntry::File(f) => println!("{:>12}  {:<20}  {}", f.size, format_mtime(f.mtime_ms), f.path),
        }
    }
    Ok(())
}

/// `hoard stat PATH`.
pub async fn stat(cluster: Option<&Path>, path: &str) -> anyhow::Result<()> {
    let client = cluster_file::client(cluster)?;
    let meta = client.stat(path).await.with_context(|| format!("stat {path}"))?;
    println!("path:    {path}");
    println!("size:    {} ({})", meta.size, super::human_bytes(meta.size));
    println!("version: {}", meta.version);
    println!("mtime:   {}", format_mtime(meta.mtime_ms));
    Ok(())
}

/// `hoard cat PATH`.
pub async fn cat(cluster: Option<&Path>, path: &str, offset: u64, length: Option<u64>) -> anyhow::Result<()> {
    let client = cluster_file::client(cluster)?;
    // Opened once: every piece comes from the same version of the file, with no stat per piece.
    let file = client.open(path).await.with_context(|| format!("open {path}"))?;
    let size = file.meta().size;
    let end = length.map_or(size, |n| offset.saturating_add(n).min(size));
    let mut stdout = tokio::io::stdout();
    let mut buf = bytes::BytesMut::new();
    let mut at = offset;
    while at < end {
        let n = CAT_PIECE_BYTES.min(end - at);
        buf.clear();
        buf = file
            .read_into(at, n, buf)
            .await
            .with_context(|| format!("read {path} at {at}"))?;
        if buf.is_empty() {
            break;
        }
        stdout.write_all(&buf).await.context("write to stdout")?;
        at += buf.len() as u64;
    }
    stdout.flush().await.context("write to stdout")?;
    Ok(())
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC); `-` when unknown.
fn format_mtime(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(format_mtime(0), "-");
        assert_eq!(format_mtime(86_400_000), "1970-01-02T00:00:00Z");
        assert_eq!(format_mtime(1_795_000_000_000), "2026-11-18T11:06:40Z");
    }
}
