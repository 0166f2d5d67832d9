//! Files opened through a client: a [`Reader`] of one version, a streaming [`Writer`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use hoard_client::{ClientError, CreateOptions, OpenFile};
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::buffers::{Buffer, Target, bytes_of};
use crate::errors::{raise, to_py};
use crate::session::{Session, Sessions};
use crate::{FileInfo, mount_of};

/// A file opened for reading: every read sees the version it had when opened, and raises
/// `Changed` once that version is gone (the file was replaced).
#[pyclass(module = "hoard._hoard", name = "Reader", frozen)]
#[derive(Debug)]
pub struct Reader {
    sessions: Arc<Sessions>,
    path: String,
    info: FileInfo,
    /// The opened file and the session it belongs to (re-opened in a forked child).
    open: Mutex<(Arc<Session>, OpenFile)>,
}

impl Reader {
    /// Open `path` through the current session.
    pub fn open(py: Python<'_>, sessions: Arc<Sessions>, path: String) -> PyResult<Reader> {
        let session = sessions.get()?;
        let file = session.run(py, async |c| c.open(&path).await)?;
        let info = FileInfo::file(mount_of(&path), file.meta().clone());
        Ok(Reader {
            sessions,
            path,
            info,
            open: Mutex::new((session, file)),
        })
    }

    /// The opened file in this process, opened again (the same version) after a fork. No lock
    /// is held while the file is opened again: that releases the GIL, and another thread
    /// waiting on the lock with the GIL held would never let it be taken back.
    fn file(&self, py: Python<'_>) -> PyResult<(Arc<Session>, OpenFile)> {
        let (session, file) = {
            let open = self.open.lock();
            (open.0.clone(), open.1.clone())
        };
        if session.is_current() {
            return Ok((session, file));
        }
        let session = self.sessions.get()?;
        let fresh = session.run(py, async |c| c.open(&self.path).await)?;
        if fresh.meta().version != file.meta().version {
            return Err(to_py(ClientError::Changed {
                path: self.path.clone(),
            }));
        }
        *self.open.lock() = (session.clone(), fresh.clone());
        Ok((session, fresh))
    }
}

#[pymethods]
impl Reader {
    /// The opened file's info (size, version...).
    #[getter]
    fn info(&self) -> FileInfo {
        self.info.clone()
    }

    /// Its size in bytes.
    #[getter]
    fn size(&self) -> u64 {
        self.info.size
    }

    /// Its path.
    #[getter]
    fn path(&self) -> String {
        self.path.clone()
    }

    fn __repr__(&self) -> String {
        format!("<hoard.Reader {:?}, {} bytes>", self.path, self.info.size)
    }

    /// Bytes `[offset, offset + length)` (to the end without `length`; fewer at the end).
    #[pyo3(signature = (offset=0, length=None))]
    fn read<'py>(&self, py: Python<'py>, offset: u64, length: Option<u64>) -> PyResult<Bound<'py, PyBytes>> {
        let (session, file) = self.file(py)?;
        let len = length.unwrap_or(u64::MAX);
        let bytes = session.run(py, async |_| file.read(offset, len).await)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// As `read`, without copying (see `Client.read_buffer`).
    #[pyo3(signature = (offset=0, length=None))]
    fn read_buffer(&self, py: Python<'_>, offset: u64, length: Option<u64>) -> PyResult<Buffer> {
        let (session, file) = self.file(py)?;
        let len = length.unwrap_or(u64::MAX);
        let bytes = session.run(py, async |_| file.read(offset, len).await)?;
        Ok(Buffer::new(bytes))
    }

    /// Fill `buffer` from `offset`; returns how many bytes were read.
    #[pyo3(signature = (buffer, offset=0))]
    fn read_into(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>, offset: u64) -> PyResult<usize> {
        let target = Target::of(buffer)?;
        let (session, file) = self.file(py)?;
        let (n, target) = session.run(py, async move |_| crate::fill(&file, offset, target).await)?;
        drop(target);
        Ok(n)
    }
}

/// A file being written: bytes stream to the mount's coordinator as they are written; the file
/// appears when `close` returns (or at each `flush`). A `with` block closes it, or aborts it
/// when the block raises. Writers do not cross `fork`: a child must open its own.
#[pyclass(module = "hoard._hoard", name = "Writer", frozen)]
#[derive(Debug)]
pub struct Writer {
    session: Arc<Session>,
    path: String,
    /// The open writer (`None` once closed or aborted); a tokio lock, held across the awaits
    /// of one call so that calls from several Python threads take turns.
    writer: tokio::sync::Mutex<Option<hoard_client::Writer>>,
    /// Bytes written, as of the last call.
    written: AtomicU64,
}

impl Writer {
    /// Open `path` for writing.
    pub fn create(py: Python<'_>, sessions: &Sessions, path: String, options: CreateOptions) -> PyResult<Writer> {
        let session = sessions.get()?;
        let writer = session.run(py, async |c| c.create(&path, options).await)?;
        Ok(Writer {
            session,
            path,
            writer: tokio::sync::Mutex::new(Some(writer)),
            written: AtomicU64::new(0),
        })
    }

    fn check(&self) -> PyResult<()> {
        if !self.session.is_current() {
            return Err(raise(
                "HoardError",
                format!(
                    "{}: a writer cannot be used in a forked child; open one there",
                    self.path
                ),
            ));
        }
        Ok(())
    }

    fn closed_error(&self) -> PyErr {
        raise("HoardError", format!("{}: the writer is closed", self.path))
    }

    /// Write `data` (if any) then flush (if asked), on the open writer, with the GIL released.
    fn send(&self, py: Python<'_>, data: Option<Bytes>, flush: bool) -> PyResult<()> {
        self.check()?;
        let result = self.session.block_on(py, async {
            let mut guard = self.writer.lock().await;
            let Some(w) = guard.as_mut() else {
                return Err(None);
            };
            if let Some(data) = data {
                w.write_bytes(data).await.map_err(Some)?;
            }
            if flush {
                w.flush().await.map_err(Some)?;
            }
            self.written.store(w.written(), Ordering::Relaxed);
            Ok(())
        });
        result?.map_err(|e| e.map_or_else(|| self.closed_error(), to_py))
    }

    /// The writer, taken out to finish it.
    fn take(&self, py: Python<'_>) -> PyResult<hoard_client::Writer> {
        self.check()?;
        let taken = self.session.block_on(py, async { self.writer.lock().await.take() })?;
        taken.ok_or_else(|| self.closed_error())
    }

    /// Whether it is still open; never in a forked child (whose inherited runtime must not be
    /// used: a lock a parent's thread held at the fork stays held).
    fn is_open(&self, py: Python<'_>) -> PyResult<bool> {
        if !self.session.is_current() {
            return Ok(false);
        }
        self.session.block_on(py, async { self.writer.lock().await.is_some() })
    }
}

impl Drop for Writer {
    /// An unclosed writer is abandoned: the client's writer tells the coordinator from a task
    /// on the runtime, which must be the current one for that.
    fn drop(&mut self) {
        if self.session.is_current() {
            let _runtime = self.session.enter();
            drop(self.writer.get_mut().take());
        }
    }
}

#[pymethods]
impl Writer {
    /// The path being written.
    #[getter]
    fn path(&self) -> String {
        self.path.clone()
    }

    /// Bytes written so far.
    #[getter]
    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Whether `close` or `abort` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(!self.is_open(py)?)
    }

    fn __repr__(&self) -> String {
        format!("<hoard.Writer {:?}>", self.path)
    }

    /// Write bytes (any bytes-like object); returns how many.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let data = bytes_of(data)?;
        let n = data.len();
        self.send(py, Some(data), false)?;
        Ok(n)
    }

    /// Make everything written so far durable and visible.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.send(py, None, true)
    }

    /// Finish the file; returns its info.
    fn close(&self, py: Python<'_>) -> PyResult<FileInfo> {
        let w = self.take(py)?;
        let meta = self.session.run(py, async |_| w.close().await)?;
        self.written.store(meta.size, Ordering::Relaxed);
        Ok(FileInfo::file(mount_of(&self.path), meta))
    }

    /// Abandon the file: what was not flushed is dropped.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        let w = self.take(py)?;
        self.session.run(py, async |_| w.abort().await)
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (kind, _value, _traceback))]
    fn __exit__(
        &self,
        py: Python<'_>,
        kind: Option<Bound<'_, PyAny>>,
        _value: Option<Bound<'_, PyAny>>,
        _traceback: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if !self.is_open(py)? {
            return Ok(false);
        }
        if kind.is_some() {
            self.abort(py)?;
        } else {
            self.close(py)?;
        }
        Ok(false)
    }
}
