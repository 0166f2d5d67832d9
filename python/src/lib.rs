//! `hoard._hoard`: the native half of hoard's Python package.
//!
//! [`Client`] wraps the Rust client with a tokio runtime of its own. Every call that may block
//! (on the network, a worker or the under-store) releases the GIL. Errors become the exception
//! classes of `hoard/errors.py`. A client survives `fork`: a child process opens its own
//! connections on its first call (see `session.rs`). The Python half of the package (`hoard/`)
//! adds file objects, the fsspec file system, and the PyTorch datasets and checkpoints.

mod buffers;
mod errors;
mod files;
mod session;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::BytesMut;
use hoard_client::{CreateOptions, FileMeta, ListEntry, Metadata, TransportChoice};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::buffers::{Buffer, Target, bytes_of};
use crate::errors::raise;
use crate::files::{Reader, Writer};
use crate::session::Sessions;

/// A file or a directory, as `stat` and `list` see it.
#[pyclass(module = "hoard._hoard", name = "FileInfo", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct FileInfo {
    /// `/MOUNT/key`; a directory's ends with `/`.
    path: String,
    /// `"file"` or `"directory"`.
    kind: &'static str,
    /// Bytes (0 for a directory).
    size: u64,
    /// The version tag (an ETag, or size and mtime of a local file); `None` for a directory.
    version: Option<String>,
    /// Modification time in seconds since the epoch, when known.
    mtime: Option<f64>,
    /// User metadata, when the answer carries it (a `stat` does, a listing does not).
    metadata: Option<Metadata>,
}

#[pymethods]
impl FileInfo {
    fn __repr__(&self) -> String {
        format!(
            "FileInfo(path={:?}, kind={:?}, size={})",
            self.path, self.kind, self.size
        )
    }

    fn __eq__(&self, other: &Self) -> bool {
        (&self.path, self.kind, self.size, &self.version) == (&other.path, other.kind, other.size, &other.version)
    }
}

impl FileInfo {
    fn file(mount: &str, meta: FileMeta) -> FileInfo {
        FileInfo {
            path: format!("/{mount}/{}", meta.path),
            kind: "file",
            size: meta.size,
            version: Some(meta.version),
            mtime: (meta.mtime_ms > 0).then(|| meta.mtime_ms as f64 / 1000.0),
            metadata: meta.metadata.map(Metadata::from_iter),
        }
    }

    fn entry(mount: &str, entry: ListEntry) -> FileInfo {
        match entry {
            // A directory's marker (the empty object `dir/` that `mkdir` leaves in an S3
            // bucket), listed in its own directory: a directory, not a file.
            ListEntry::File(meta) if meta.path.ends_with('/') => FileInfo::entry(mount, ListEntry::Prefix(meta.path)),
            ListEntry::File(meta) => FileInfo::file(mount, meta),
            ListEntry::Prefix(prefix) => FileInfo {
                path: format!("/{mount}/{prefix}"),
                kind: "directory",
                size: 0,
                version: None,
                mtime: None,
                metadata: None,
            },
        }
    }
}

/// The mount named by a `/MOUNT/...` path (validated by the client's calls themselves).
fn mount_of(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or_default()
}

/// Where the cluster config comes from: the argument, `HOARD_CLUSTER`, then the file `hoard up`
/// writes (`$HOARD_HOME/cluster.toml`, else `~/.hoard/cluster.toml`), as for the CLI.
fn resolve_cluster(cluster: Option<PathBuf>) -> PyResult<PathBuf> {
    if let Some(path) = cluster {
        return Ok(path);
    }
    if let Some(path) = std::env::var_os("HOARD_CLUSTER").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let home = std::env::var_os("HOARD_HOME").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("HOME")
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
            .join(".hoard")
    });
    let default = home.join("cluster.toml");
    if default.exists() {
        return Ok(default);
    }
    Err(raise(
        "ConfigError",
        "no cluster config: pass cluster=PATH, set HOARD_CLUSTER, or start one with `hoard up`".into(),
    ))
}

/// A client of a hoard cluster. Paths are `/MOUNT/key`, as in the CLI. Safe to share between
/// threads; usable in forked children (each process opens its own connections).
#[pyclass(module = "hoard._hoard", name = "Client", frozen)]
#[derive(Debug)]
pub struct Client {
    sessions: Arc<Sessions>,
}

#[pymethods]
impl Client {
    /// `cluster`: the cluster config file (default: `HOARD_CLUSTER`, then `~/.hoard/cluster.toml`).
    /// `transport`: `auto`, `shm`, `tcp` or `rdma` (default: `HOARD_TRANSPORT`, then the config).
    #[new]
    #[pyo3(signature = (cluster=None, *, transport=None))]
    fn new(cluster: Option<PathBuf>, transport: Option<&str>) -> PyResult<Client> {
        init_logging();
        let path = resolve_cluster(cluster)?;
        let transport = transport
            .map(str::parse::<TransportChoice>)
            .transpose()
            .map_err(|e| errors::to_py(e.into()))?;
        let sessions = Sessions::open(&path, transport).map_err(errors::to_py)?;
        Ok(Client {
            sessions: Arc::new(sessions),
        })
    }

    /// The cluster config file.
    #[getter]
    fn cluster(&self) -> String {
        self.sessions.path().display().to_string()
    }

    /// The transport asked for (`None`: `HOARD_TRANSPORT`, then the config's).
    #[getter]
    fn transport(&self) -> Option<&'static str> {
        self.sessions.transport().map(|t| match t {
            TransportChoice::Auto => "auto",
            TransportChoice::Shm => "shm",
            TransportChoice::Tcp => "tcp",
            TransportChoice::Rdma => "rdma",
        })
    }

    /// The mounts' names.
    #[getter]
    fn mounts(&self) -> Vec<String> {
        self.sessions.config().mounts.iter().map(|m| m.name.clone()).collect()
    }

    fn __repr__(&self) -> String {
        format!("hoard.Client(cluster={:?})", self.sessions.path().display().to_string())
    }

    /// The file at `path`. Raises `NotFound` when there is none.
    fn stat(&self, py: Python<'_>, path: String) -> PyResult<FileInfo> {
        let meta = self.sessions.get()?.run(py, async |c| c.stat(&path).await)?;
        Ok(FileInfo::file(mount_of(&path), meta))
    }

    /// Whether a file exists at `path`.
    fn exists(&self, py: Python<'_>, path: String) -> PyResult<bool> {
        let found = self.sessions.get()?.run(py, async |c| match c.stat(&path).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() || matches!(e, hoard_client::ClientError::NoSuchMount { .. }) => Ok(false),
            Err(e) => Err(e),
        })?;
        Ok(found)
    }

    /// The files and directories in the directory `path` (everything under it with
    /// `recursive=True`, files only), in key order.
    #[pyo3(signature = (path, recursive=false))]
    fn list(&self, py: Python<'_>, path: String, recursive: bool) -> PyResult<Vec<FileInfo>> {
        let entries = self.sessions.get()?.run(py, async |c| c.list(&path, recursive).await)?;
        let mount = mount_of(&path);
        Ok(entries.into_iter().map(|e| FileInfo::entry(mount, e)).collect())
    }

    /// Bytes `[offset, offset + length)` of the file (to its end without `length`; fewer at
    /// its end), as `bytes`.
    #[pyo3(signature = (path, offset=0, length=None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        path: String,
        offset: u64,
        length: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let len = length.unwrap_or(u64::MAX);
        let bytes = self
            .sessions
            .get()?
            .run(py, async |c| c.read(&path, offset, len).await)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// As `read`, without copying: a read-only `hoard.Buffer` over the bytes hoard read, for
    /// `memoryview`, `numpy.frombuffer` or `torch.frombuffer`.
    #[pyo3(signature = (path, offset=0, length=None))]
    fn read_buffer(&self, py: Python<'_>, path: String, offset: u64, length: Option<u64>) -> PyResult<Buffer> {
        let len = length.unwrap_or(u64::MAX);
        let bytes = self
            .sessions
            .get()?
            .run(py, async |c| c.read(&path, offset, len).await)?;
        Ok(Buffer::new(bytes))
    }

    /// Fill `buffer` (a `bytearray`, writable `memoryview`, numpy array...) with the file's
    /// bytes from `offset`; returns how many were read (fewer than its size at the file's end).
    #[pyo3(signature = (path, buffer, offset=0))]
    fn read_into(&self, py: Python<'_>, path: String, buffer: &Bound<'_, PyAny>, offset: u64) -> PyResult<usize> {
        let target = Target::of(buffer)?;
        let session = self.sessions.get()?;
        let (n, target) = session.run(py, async move |c| {
            let file = c.open(&path).await?;
            fill(&file, offset, target).await
        })?;
        drop(target);
        Ok(n)
    }

    /// Open a file for reading: its version is fixed, and every read of the `Reader` sees it.
    fn open(&self, py: Python<'_>, path: String) -> PyResult<Reader> {
        Reader::open(py, self.sessions.clone(), path)
    }

    /// Write a whole file (replacing it); returns its info. `metadata`: user metadata
    /// (S3's `x-amz-meta-*`).
    #[pyo3(signature = (path, data, *, metadata=None))]
    fn put(
        &self,
        py: Python<'_>,
        path: String,
        data: &Bound<'_, PyAny>,
        metadata: Option<Metadata>,
    ) -> PyResult<FileInfo> {
        let data = bytes_of(data)?;
        let options = CreateOptions {
            metadata: metadata.unwrap_or_default(),
            ..CreateOptions::default()
        };
        let meta = self.sessions.get()?.run(py, async |c| {
            let mut w = c.create(&path, options).await?;
            w.write_bytes(data).await?;
            w.close().await
        })?;
        Ok(FileInfo::file(mount_of(&path), meta))
    }

    /// Append to a file (created if missing); returns its info.
    fn append(&self, py: Python<'_>, path: String, data: &Bound<'_, PyAny>) -> PyResult<FileInfo> {
        let data = bytes_of(data)?;
        let meta = self.sessions.get()?.run(py, async |c| c.append(&path, data).await)?;
        Ok(FileInfo::file(mount_of(&path), meta))
    }

    /// Open a file for writing: the bytes stream to the cluster as they are written, and the
    /// file appears (replacing what was there) when the `Writer` is closed. `exclusive`: fail
    /// with `AlreadyExists` if it exists; `append`: add to its end instead.
    #[pyo3(signature = (path, *, exclusive=false, append=false, metadata=None))]
    fn create(
        &self,
        py: Python<'_>,
        path: String,
        exclusive: bool,
        append: bool,
        metadata: Option<Metadata>,
    ) -> PyResult<Writer> {
        let options = CreateOptions {
            exclusive,
            append,
            metadata: metadata.unwrap_or_default(),
        };
        Writer::create(py, &self.sessions, path, options)
    }

    /// Rename a file, or a directory with everything under it, within its mount.
    fn rename(&self, py: Python<'_>, src: String, dst: String) -> PyResult<()> {
        self.sessions.get()?.run(py, async |c| c.rename(&src, &dst).await)
    }

    /// Delete a file, or with `recursive=True` a directory and everything under it.
    #[pyo3(signature = (path, recursive=false))]
    fn delete(&self, py: Python<'_>, path: String, recursive: bool) -> PyResult<()> {
        self.sessions.get()?.run(py, async |c| c.delete(&path, recursive).await)
    }

    /// Create a directory (and its parents).
    fn mkdir(&self, py: Python<'_>, path: String) -> PyResult<()> {
        self.sessions.get()?.run(py, async |c| c.mkdir(&path).await)
    }

    /// Wait until everything written under `path` has reached the under-store (`back` mode).
    fn sync(&self, py: Python<'_>, path: String) -> PyResult<()> {
        self.sessions.get()?.run(py, async |c| c.sync(&path).await)
    }

    /// Preload a file, or every file under a directory, into the cache. Returns a dict:
    /// `files`, `bytes` (now cached), `already_cached_bytes`, `seconds`.
    fn load(&self, py: Python<'_>, path: String) -> PyResult<BTreeMap<&'static str, f64>> {
        let s = self.sessions.get()?.run(py, async |c| c.load(&path, &|_| {}).await)?;
        Ok(BTreeMap::from([
            ("files", s.files as f64),
            ("bytes", s.bytes as f64),
            ("already_cached_bytes", s.already_cached_bytes as f64),
            ("seconds", s.elapsed.as_secs_f64()),
        ]))
    }

    /// Bytes and requests so far per transport, as a dict (for checking how reads went).
    fn transport_counts(&self) -> PyResult<BTreeMap<&'static str, u64>> {
        let t = self.sessions.get()?.client().transport_counts();
        Ok(BTreeMap::from([
            ("tcp_bytes", t.tcp_bytes),
            ("tcp_requests", t.tcp_requests),
            ("shm_bytes", t.shm_bytes),
            ("shm_requests", t.shm_requests),
            ("shm_cached_copies", t.shm_cached_copies),
            ("rdma_bytes", t.rdma_bytes),
            ("rdma_requests", t.rdma_requests),
            ("rdma_cached_reads", t.rdma_cached_reads),
        ]))
    }
}

/// Read `[offset, offset + target.len())` of an opened file into `target`; the count read and
/// the target back (so that its export is released with the GIL held).
async fn fill(
    file: &hoard_client::OpenFile,
    offset: u64,
    mut target: Target,
) -> hoard_client::ClientResult<(usize, Target)> {
    // The bytes land in a buffer of this thread's, kept from call to call: a fresh one would be
    // allocated and faulted in for every read (a third of the time of a 1 MiB read).
    thread_local! {
        static SCRATCH: std::cell::Cell<BytesMut> = std::cell::Cell::new(BytesMut::new());
    }
    let want = target.len() as u64;
    let mut scratch = SCRATCH.take();
    scratch.clear();
    let mut bytes = file.read_into(offset, want, scratch).await?;
    let n = target.fill_from(&bytes);
    if bytes.capacity() <= SCRATCH_KEPT {
        bytes.clear();
        SCRATCH.set(bytes);
    }
    Ok((n, target))
}

/// The largest per-thread read buffer kept between calls (a failed read drops its buffer).
const SCRATCH_KEPT: usize = 16 << 20;

/// Log to stderr as `HOARD_LOG` (an `EnvFilter`) says, when it is set.
fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("HOARD_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .try_init();
        }
    });
}

/// The extension module.
#[pymodule]
fn _hoard(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    m.add_class::<FileInfo>()?;
    m.add_class::<Reader>()?;
    m.add_class::<Writer>()?;
    m.add_class::<Buffer>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
