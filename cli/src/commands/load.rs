//! `hoard load`: preload with a progress bar and a summary line.

use std::path::Path;

use anyhow::Context;
use hoard_client::LoadProgress;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cluster_file;

/// Preload `path`; print `loaded N files, X (Y already cached) in S s (R/s)`.
pub async fn run(cluster: Option<&Path>, path: &str, quiet: bool) -> anyhow::Result<()> {
    let client = cluster_file::client(cluster)?;
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg}",
        )
        .context("progress bar template")?,
    );
    let progress = |p: LoadProgress| match p {
        LoadProgress::Planned { files, bytes } => {
            bar.set_length(bytes);
            bar.set_message(format!("{files} files"));
        }
        LoadProgress::Loaded(n) => bar.inc(n),
    };
    let summary = client
        .load(path, &progress)
        .await
        .with_context(|| format!("load {path}"));
    bar.finish_and_clear();
    let s = summary?;
    let secs = s.elapsed.as_secs_f64();
    let rate = if secs > 0.0 { (s.bytes as f64 / secs) as u64 } else { 0 };
    println!(
        "loaded {} files, {} ({} already cached) in {secs:.2} s ({}/s)",
        s.files,
        super::human_bytes(s.bytes),
        super::human_bytes(s.already_cached_bytes),
        super::human_bytes(rate)
    );
    Ok(())
}
