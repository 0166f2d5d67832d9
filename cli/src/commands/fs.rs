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
            ListEntry::Prefix(p) => println!("{:>12}  {:<23}  {p}", "-", "-"),
            ListEntry::File(f) => println!("{:>12}  {:<23}  {}", f.size, format_mtime(f.mtime_ms), f.path),
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
    let meta = client.stat(path).await.with_context(|| format!("stat {path}"))?;
    let end = length.map_or(meta.size, |n| offset.saturating_add(n).min(meta.size));
    let mut stdout = tokio::io::stdout();
    let mut at = offset;
    while at < end {
        let n = CAT_PIECE_BYTES.min(end - at);
        let bytes = client
            .read(path, at, n)
            .await
            .with_context(|| format!("read {path} at {at}"))?;
        if bytes.is_empty() {
            break;
        }
        stdout.write_all(&bytes).await.context("write to stdout")?;
        at += bytes.len() as u64;
    }
    stdout.flush().await.context("write to stdout")?;
    Ok(())
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
fn format_mtime(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(format_mtime(0), "-");
        assert_eq!(format_mtime(86_400_000), "1970-01-02 00:00:00 UTC");
        assert_eq!(format_mtime(1_795_000_000_000), "2026-11-18 11:06:40 UTC");
    }
}
