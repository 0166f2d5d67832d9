//! Listing a large directory: `ls -f` (names only, unsorted) and `ls -l` (sorted, every entry
//! stat'ed) through the mount and on local disk, and `hoard ls` through the CLI, each timed
//! from the first listing after the caches were emptied and again right after.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, ensure};
use serde::Serialize;

use super::setup::{Fixture, LIST_DIR, MOUNT};

/// Seconds each listing took; `first` after the caches were emptied, `again` right after.
#[derive(Debug, Clone, Serialize)]
pub struct ListingReport {
    /// Entries in the directory.
    pub entries: usize,
    /// `ls -f | wc -l` through the mount.
    pub mount_ls_f: FirstAgain,
    /// `ls -l | wc -l` through the mount (right after `ls -f`).
    pub mount_ls_l_s: f64,
    /// `hoard ls /MOUNT/list/ | wc -l`.
    pub cli_ls: FirstAgain,
    /// `ls -f | wc -l` on local disk.
    pub local_ls_f: FirstAgain,
    /// `ls -l | wc -l` on local disk (right after `ls -f`).
    pub local_ls_l_s: f64,
}

/// A first (cold) and a second (warm) timing, in seconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FirstAgain {
    /// The first listing after a new worker process and dropped kernel caches.
    pub first_s: f64,
    /// The listing right after it.
    pub again_s: f64,
}

/// Time every listing; each one's line count is checked against `entries`.
///
/// # Errors
/// When a command fails or lists another number of entries.
pub async fn measure(fx: &mut Fixture, hoard_bin: &Path, entries: usize) -> anyhow::Result<ListingReport> {
    let local = fx.ufs.join(LIST_DIR);
    let mounted = fx.cached.join(LIST_DIR);
    // `ls -f` lists `.` and `..` too; `ls -l` starts with a `total` line.
    let ls_f = |dir: &Path| format!("ls -f {} | wc -l", quote(dir));
    let ls_l = |dir: &Path| format!("ls -l {} | wc -l", quote(dir));
    fx.drop_caches()?;
    let local_ls_f = FirstAgain {
        first_s: timed(&ls_f(&local), entries + 2).await?,
        again_s: timed(&ls_f(&local), entries + 2).await?,
    };
    let local_ls_l_s = timed(&ls_l(&local), entries + 1).await?;

    let cli = format!(
        "{} --cluster {} ls /{MOUNT}/{LIST_DIR}/ | wc -l",
        quote(hoard_bin),
        quote(&fx.config_path)
    );
    fx.cold().await?;
    let cli_ls = FirstAgain {
        first_s: timed(&cli, entries).await?,
        again_s: timed(&cli, entries).await?,
    };

    fx.cold().await?;
    let mount_ls_f = FirstAgain {
        first_s: timed(&ls_f(&mounted), entries + 2).await?,
        again_s: timed(&ls_f(&mounted), entries + 2).await?,
    };
    let mount_ls_l_s = timed(&ls_l(&mounted), entries + 1).await?;
    Ok(ListingReport {
        entries,
        mount_ls_f,
        mount_ls_l_s,
        cli_ls,
        local_ls_f,
        local_ls_l_s,
    })
}

/// Seconds `bash -c script` took; it must print the number `lines`.
async fn timed(script: &str, lines: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("run `{script}`"))?;
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "`{script}` failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counted: usize = stdout
        .trim()
        .parse()
        .with_context(|| format!("`{script}` printed {stdout:?}"))?;
    ensure!(counted == lines, "`{script}` printed {counted} lines, not {lines}");
    Ok(seconds)
}

/// A path quoted for bash.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_for_bash() {
        assert_eq!(quote(Path::new("/a b/c")), "'/a b/c'");
        assert_eq!(quote(Path::new("/it's")), r"'/it'\''s'");
    }
}
