//! `hoard cluster status`: one line per worker, then the totals of the workers that answered.

use std::path::Path;

use anyhow::bail;
use hoard_client::WorkerStatus;

use super::human_bytes;
use crate::cluster_file;

/// Print the status table; fail (non-zero exit) when no worker answers.
pub async fn run(cluster: Option<&Path>) -> anyhow::Result<()> {
    let client = cluster_file::client(cluster)?;
    let statuses = client.cluster_status().await;
    println!("{}", header());
    let mut total = WorkerStatus::default();
    let mut up = 0;
    for ((id, status), entry) in statuses.iter().zip(&client.config().workers) {
        let addr = entry.addr.to_string();
        match status {
            Ok(s) => {
                up += 1;
                add(&mut total, s);
                println!("{}", row(id, &addr, s));
            }
            Err(e) => println!("{id:<12} {addr:<22} {:<5}  ({e})", "down"),
        }
    }
    if up > 0 {
        println!("{}", total_row(&total));
    }
    println!("{up} of {} workers up", statuses.len());
    if up == 0 {
        bail!("no worker answers");
    }
    Ok(())
}

fn header() -> String {
    format!(
        "{:<12} {:<22} {:<5} {:>11} {:>11} {:>9} {:>9} {:>10} {:>11} {:>8} {:>11}",
        "WORKER", "ADDR", "STATE", "CAPACITY", "USED", "PAGES", "HIT", "UPTIME", "BACKLOG", "OPS", "CACHE-ONLY"
    )
}

/// One worker that answered.
fn row(id: &str, addr: &str, s: &WorkerStatus) -> String {
    format!(
        "{id:<12} {addr:<22} {:<5} {} {:>9}s {}",
        "up",
        cache_columns(s),
        s.uptime_s,
        write_columns(s)
    )
}

/// The sums over the workers that answered (no uptime).
fn total_row(total: &WorkerStatus) -> String {
    format!(
        "{:<12} {:<22} {:<5} {} {:>10} {}",
        "total",
        "",
        "",
        cache_columns(total),
        "",
        write_columns(total)
    )
}

/// CAPACITY, USED, PAGES, HIT.
fn cache_columns(s: &WorkerStatus) -> String {
    let lookups = s.hits + s.misses;
    let hit = if lookups == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", 100.0 * s.hits as f64 / lookups as f64)
    };
    format!(
        "{:>11} {:>11} {:>9} {hit:>9}",
        human_bytes(s.capacity_bytes),
        human_bytes(s.used_bytes),
        s.pages
    )
}

/// BACKLOG, OPS, CACHE-ONLY: what the worker, as a mount coordinator, has not yet written to the
/// under-store (`back` mode), and what it holds for `cache-only` mounts.
fn write_columns(s: &WorkerStatus) -> String {
    format!(
        "{:>11} {:>8} {:>11}",
        human_bytes(s.backlog_bytes),
        s.backlog_ops,
        human_bytes(s.cache_only_bytes)
    )
}

fn add(total: &mut WorkerStatus, s: &WorkerStatus) {
    total.capacity_bytes += s.capacity_bytes;
    total.used_bytes += s.used_bytes;
    total.pages += s.pages;
    total.hits += s.hits;
    total.misses += s.misses;
    total.backlog_bytes += s.backlog_bytes;
    total.backlog_ops += s.backlog_ops;
    total.cache_only_bytes += s.cache_only_bytes;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(hits: u64, backlog_bytes: u64, backlog_ops: u64) -> WorkerStatus {
        WorkerStatus {
            worker_id: "w".into(),
            capacity_bytes: 1 << 30,
            used_bytes: 1 << 20,
            pages: 1,
            hits,
            misses: 1,
            uptime_s: 7,
            backlog_bytes,
            backlog_ops,
            cache_only_bytes: 3 << 20,
            ..WorkerStatus::default()
        }
    }

    #[test]
    fn columns_line_up() {
        let s = status(3, 5 << 20, 2);
        let (head, line) = (header(), row("w1", "127.0.0.1:7301", &s));
        assert_eq!(head.len(), line.len(), "\n{head}\n{line}");
        assert!(line.contains("75.0%"), "{line}");
        assert!(line.ends_with("    5.0 MiB        2     3.0 MiB"), "{line}");
        let mut total = WorkerStatus::default();
        add(&mut total, &s);
        add(&mut total, &status(0, 0, 1));
        let sum = total_row(&total);
        assert_eq!(head.len(), sum.len(), "\n{head}\n{sum}");
        assert!(sum.starts_with("total "), "{sum}");
        assert!(sum.contains("2.0 GiB") && sum.contains("60.0%"), "{sum}");
        assert!(sum.ends_with("    5.0 MiB        3     6.0 MiB"), "{sum}");
    }
}
