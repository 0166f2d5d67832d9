//! `hoard cluster status`: one line per worker.

use std::path::Path;

use anyhow::bail;

use super::human_bytes;
use crate::cluster_file;

/// Print the status table; fail (non-zero exit) when no worker answers.
pub async fn run(cluster: Option<&Path>) -> anyhow::Result<()> {
    let client = cluster_file::client(cluster)?;
    let statuses = client.cluster_status().await;
    println!(
        "{:<12} {:<22} {:<5} {:>11} {:>11} {:>9} {:>9} {:>10}",
        "WORKER", "ADDR", "STATE", "CAPACITY", "USED", "PAGES", "HIT", "UPTIME"
    );
    let mut up = 0;
    for ((id, status), entry) in statuses.iter().zip(&client.config().workers) {
        match status {
            Ok(s) => {
                up += 1;
                let lookups = s.hits + s.misses;
                let hit = if lookups == 0 {
                    "-".to_owned()
                } else {
                    format!("{:.1}%", 100.0 * s.hits as f64 / lookups as f64)
                };
                println!(
                    "{id:<12} {:<22} {:<5} {:>11} {:>11} {:>9} {hit:>9} {:>9}s",
                    entry.addr.to_string(),
                    "up",
                    human_bytes(s.capacity_bytes),
                    human_bytes(s.used_bytes),
                    s.pages,
                    s.uptime_s
                );
            }
            Err(e) => println!("{id:<12} {:<22} {:<5}  ({e})", entry.addr.to_string(), "down"),
        }
    }
    println!("{up} of {} workers up", statuses.len());
    if up == 0 {
        bail!("no worker answers");
    }
    Ok(())
}
