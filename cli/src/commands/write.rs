//! `hoard put`, `append`, `mv`, `rm`, `mkdir`, `sync`: the write side of the file commands.
//!
//! Every one of them goes to the mount's coordinator (`docs/semantics.md`). `put` and `append`
//! stream the local file through a [`Writer`] in pieces of [`PIECE_BYTES`]: a file of any size
//! costs a few pieces of memory, never its whole size.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use hoard_client::{Client, ClientError, CreateOptions, FileMeta, Writer};
use hoard_transport::wire::Status;
use indicatif::{ProgressBar, ProgressStyle};

use super::human_bytes;
use crate::cluster_file;

/// Bytes read from the local file at a time.
const PIECE_BYTES: usize = 8 << 20;

/// How long an interrupted or failed `put` waits for the coordinator to drop its session; past
/// it the coordinator drops it by itself (`session_idle_timeout`).
const ABORT_TIMEOUT: Duration = Duration::from_secs(5);

/// `put` (create or replace) or `append`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create or replace the file; with `exclusive`, fail if it exists.
    Put {
        /// Fail if the path exists.
        exclusive: bool,
    },
    /// Append to the file, creating it if missing.
    Append,
}

/// What `put` and `append` print.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// A summary line on success.
    pub verbose: bool,
    /// No progress bar.
    pub quiet: bool,
}

/// `hoard put LOCAL PATH` and `hoard append LOCAL PATH`.
pub async fn put(cluster: Option<&Path>, local: &Path, path: &str, mode: Mode, out: Output) -> anyhow::Result<()> {
    let client = cluster_file::client(cluster)?;
    let verb = match mode {
        Mode::Put { .. } => "put",
        Mode::Append => "append to",
    };
    let path = target_path(local, path).with_context(|| format!("{verb} {path}"))?;
    // Opened before the coordinator is asked, so a wrong local name opens no session.
    let source = Source::open(local).with_context(|| format!("{verb} {path}"))?;
    let bar = progress_bar(source.len, out.quiet)?;
    let started = Instant::now();
    let result = stream(&client, source, &path, mode, &bar).await;
    bar.finish_and_clear();
    let (meta, sent) = result.with_context(|| format!("{verb} {path}"))?;
    if out.verbose {
        println!("{}", summary(&path, mode, &meta, sent, started.elapsed()));
    }
    Ok(())
}

/// Open the writer, copy the source into it and close it; abort it on any failure or Ctrl-C.
/// Returns the file's metadata and the bytes sent.
async fn stream(
    client: &Client,
    source: Source,
    path: &str,
    mode: Mode,
    bar: &ProgressBar,
) -> anyhow::Result<(FileMeta, u64)> {
    let options = match mode {
        Mode::Put { exclusive } => CreateOptions {
            exclusive,
            ..CreateOptions::default()
        },
        Mode::Append => CreateOptions {
            append: true,
            ..CreateOptions::default()
        },
    };
    let mut writer = client.create(path, options).await.map_err(write_error)?;
    let copied = tokio::select! {
        copied = copy(source, &mut writer, bar) => copied,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    if let Err(e) = copied {
        // Nothing was flushed: the path keeps what it had.
        match tokio::time::timeout(ABORT_TIMEOUT, writer.abort()).await {
            Ok(Ok(())) => {}
            Ok(Err(abort)) => tracing::debug!("abort the write session: {abort}"),
            Err(_) => tracing::debug!("abort the write session: no answer in {ABORT_TIMEOUT:?}"),
        }
        return Err(e.context("nothing was written"));
    }
    let sent = writer.written();
    bar.set_message("closing");
    let meta = writer.close().await.map_err(write_error)?;
    Ok((meta, sent))
}

/// Copy the source into the writer, piece by piece.
async fn copy(mut source: Source, writer: &mut Writer, bar: &ProgressBar) -> anyhow::Result<()> {
    loop {
        let (back, piece) = source.next_piece().await?;
        source = back;
        if piece.is_empty() {
            return Ok(());
        }
        let n = piece.len() as u64;
        writer.write_bytes(piece).await.map_err(write_error)?;
        bar.inc(n);
    }
}

/// The local side of `put`: a file or standard input, read in a blocking thread.
struct Source {
    /// For error messages.
    name: String,
    reader: Box<dyn Read + Send>,
    /// Size of a regular file; `None` for standard input, pipes and devices.
    len: Option<u64>,
}

impl Source {
    fn open(local: &Path) -> anyhow::Result<Source> {
        if local == Path::new("-") {
            return Ok(Source {
                name: "standard input".into(),
                reader: Box::new(std::io::stdin()),
                len: None,
            });
        }
        let name = local.display().to_string();
        let file = std::fs::File::open(local).with_context(|| format!("open {name}"))?;
        let meta = file.metadata().with_context(|| format!("stat {name}"))?;
        if meta.is_dir() {
            bail!("{name} is a directory");
        }
        let len = meta.is_file().then_some(meta.len());
        Ok(Source {
            name,
            reader: Box::new(file),
            len,
        })
    }

    /// The next piece: [`PIECE_BYTES`], shorter only at the end, empty after it.
    async fn next_piece(mut self) -> anyhow::Result<(Source, Bytes)> {
        tokio::task::spawn_blocking(move || {
            let mut piece = Vec::with_capacity(PIECE_BYTES);
            (&mut self.reader)
                .take(PIECE_BYTES as u64)
                .read_to_end(&mut piece)
                .with_context(|| format!("read {}", self.name))?;
            Ok((self, Bytes::from(piece)))
        })
        .await
        .context("join the read task")?
    }
}

/// The hoard path to write: `path`, or with a trailing `/` the local file's name under it.
fn target_path(local: &Path, path: &str) -> anyhow::Result<String> {
    if !path.ends_with('/') {
        return Ok(path.to_owned());
    }
    match local.file_name() {
        Some(name) if local != Path::new("-") => Ok(format!("{path}{}", name.to_string_lossy())),
        _ => bail!("a path ending with `/` takes the local file's name, and standard input has none"),
    }
}

fn progress_bar(len: Option<u64>, quiet: bool) -> anyhow::Result<ProgressBar> {
    if quiet {
        return Ok(ProgressBar::hidden());
    }
    // Drawn on stderr, and only when it is a terminal.
    let (bar, template) = match len {
        Some(n) => (
            ProgressBar::new(n),
            "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg}",
        ),
        None => (
            ProgressBar::no_length(),
            "{spinner} [{elapsed_precise}] {binary_bytes} {binary_bytes_per_sec} {msg}",
        ),
    };
    bar.set_style(ProgressStyle::with_template(template).context("progress bar template")?);
    Ok(bar)
}

/// `/data/x: wrote 1.0 GiB in 2.31 s (443.3 MiB/s), version hoard:…` (or `appended …; now …`).
fn summary(path: &str, mode: Mode, meta: &FileMeta, sent: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { (sent as f64 / secs) as u64 } else { 0 };
    let timing = format!("{} in {secs:.2} s ({}/s)", human_bytes(sent), human_bytes(rate));
    match mode {
        Mode::Put { .. } => format!("{path}: wrote {timing}, version {}", meta.version),
        Mode::Append => format!(
            "{path}: appended {timing}; now {}, version {}",
            human_bytes(meta.size),
            meta.version
        ),
    }
}

/// `hoard mv SRC DST`.
pub async fn mv(cluster: Option<&Path>, src: &str, dst: &str) -> anyhow::Result<()> {
    let client = cluster_file::client(cluster)?;
    client
        .rename(src, dst)
        .await
        .map_err(write_error)
        .with_context(|| format!("rename {src} to {dst}"))
}

/// `hoard rm [-r] PATH`.
pub async fn rm(cluster: Option<&Path>, path: &str, recursive: bool) -> anyhow::Result<()> {
    let client = cluster_file::client(cluster)?;
    client
        .delete(path, recursive)
        .await
        .map_err(|e| match e {
            ClientError::Worker {
                status: Status::NotEmpty,
                ..
            } if !recursive => anyhow!("directory not empty (`hoard rm -r` deletes it and everything under it)"),
            e => write_error(e),
        })
        .with_context(|| format!("delete {path}"))
}

/// `hoard mkdir PATH`.
pub async fn mkdir(cluster: Option<&Path>, path: &str) -> anyhow::Result<()> {
    let client = cluster_file::client(cluster)?;
    client
        .mkdir(path)
        .await
        .map_err(write_error)
        .with_context(|| format!("create directory {path}"))
}

/// `hoard sync PATH`: wait, then say how long it took (on a terminal).
pub async fn sync(cluster: Option<&Path>, path: &str) -> anyhow::Result<()> {
    let client = cluster_file::client(cluster)?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("waiting for {path} to reach the under-store"));
    spinner.enable_steady_tick(Duration::from_millis(100));
    let started = Instant::now();
    let synced = client.sync(path).await;
    spinner.finish_and_clear();
    synced.map_err(write_error).with_context(|| format!("sync {path}"))?;
    if std::io::stdout().is_terminal() {
        println!(
            "{path}: in the under-store (waited {:.2} s)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// A write-side error, worded for people: the coordinator's statuses get a name, and an
/// unreachable coordinator says so (the client's `Unavailable` speaks of reads).
fn write_error(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Unavailable { path, source } => {
            anyhow!("{path}: the mount's coordinator is unavailable (writes do not fail over): {source}")
        }
        ClientError::Worker { status, message } => match status_text(status) {
            Some(text) if message.is_empty() => anyhow!("{text}"),
            Some(text) => anyhow!("{text}: {message}"),
            None => ClientError::Worker { status, message }.into(),
        },
        e => e.into(),
    }
}

/// A name for each status of the write path (the coordinator's message says the rest).
fn status_text(status: Status) -> Option<&'static str> {
    Some(match status {
        Status::NoSpace => "no space left",
        Status::NotEmpty => "directory not empty",
        Status::NotADirectory => "a file and a directory meet",
        Status::NoSuchSession => "write session lost",
        Status::NotCoordinator => "wrong coordinator",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(size: u64) -> FileMeta {
        FileMeta {
            path: "x".into(),
            size,
            version: "hoard:7".into(),
            mtime_ms: 0,
            homed: true,
            metadata: None,
        }
    }

    #[test]
    fn trailing_slash_takes_the_local_name() {
        assert_eq!(target_path(Path::new("a/b.bin"), "/data/x").unwrap(), "/data/x");
        assert_eq!(
            target_path(Path::new("a/b.bin"), "/data/dir/").unwrap(),
            "/data/dir/b.bin"
        );
        assert!(target_path(Path::new("-"), "/data/dir/").is_err());
        assert_eq!(target_path(Path::new("-"), "/data/x").unwrap(), "/data/x");
    }

    #[test]
    fn summaries() {
        let put = Mode::Put { exclusive: false };
        assert_eq!(
            summary("/data/x", put, &meta(2048), 2048, Duration::from_secs(2)),
            "/data/x: wrote 2.0 KiB in 2.00 s (1.0 KiB/s), version hoard:7"
        );
        assert_eq!(
            summary("/data/log", Mode::Append, &meta(4096), 1024, Duration::from_secs(1)),
            "/data/log: appended 1.0 KiB in 1.00 s (1.0 KiB/s); now 4.0 KiB, version hoard:7"
        );
        assert!(summary("/data/x", put, &meta(0), 0, Duration::ZERO).contains("(0 B/s)"));
    }

    #[test]
    fn errors_are_worded_for_people() {
        let e = write_error(ClientError::Worker {
            status: Status::NoSpace,
            message: "journal full".into(),
        });
        assert!(format!("{e:#}").starts_with("no space left"), "{e:#}");
        assert!(format!("{e:#}").ends_with(": journal full"), "{e:#}");
        let e = write_error(ClientError::Unavailable {
            path: "/data/x".into(),
            source: "coordinator w1 of mount data: connection refused".into(),
        });
        assert!(format!("{e:#}").contains("coordinator is unavailable"), "{e:#}");
        let e = write_error(ClientError::NotFound { path: "/data/x".into() });
        assert_eq!(format!("{e:#}"), "/data/x: no such file");
    }

    #[tokio::test]
    async fn reads_in_whole_pieces() {
        let dir = std::env::temp_dir().join(format!("hoard-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("piece.bin");
        let data: Vec<u8> = (0..PIECE_BYTES + 10).map(|i| i as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let source = Source::open(&file).unwrap();
        assert_eq!(source.len, Some(data.len() as u64));
        let (source, first) = source.next_piece().await.unwrap();
        let (source, second) = source.next_piece().await.unwrap();
        let (_, end) = source.next_piece().await.unwrap();
        assert_eq!(first.len(), PIECE_BYTES);
        assert_eq!(second.len(), 10);
        assert!(end.is_empty());
        assert_eq!([first, second].concat(), data);
        assert!(Source::open(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
