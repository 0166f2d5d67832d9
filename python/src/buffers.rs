//! Bytes across the boundary: Rust `Bytes` lent to Python without a copy, Python buffers
//! (`bytes`, `bytearray`, `memoryview`, numpy arrays) read from and written into.

use std::ffi::c_int;

use bytes::Bytes;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyBufferError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;

/// Bytes read by hoard, exported read-only through the buffer protocol: `memoryview(b)`,
/// `numpy.frombuffer(b)` and `torch.frombuffer(b)` see them where they are, with no copy.
#[pyclass(module = "hoard._hoard", name = "Buffer", frozen)]
#[derive(Debug)]
pub struct Buffer {
    bytes: Bytes,
}

impl Buffer {
    /// Export `bytes`.
    pub fn new(bytes: Bytes) -> Buffer {
        Buffer { bytes }
    }
}

#[pymethods]
impl Buffer {
    fn __len__(&self) -> usize {
        self.bytes.len()
    }

    fn __repr__(&self) -> String {
        format!("<hoard.Buffer of {} bytes>", self.bytes.len())
    }

    /// A `bytes` copy.
    fn tobytes<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        pyo3::types::PyBytes::new(py, &self.bytes)
    }

    /// # Safety
    /// Called by CPython with a view to fill.
    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("no view to fill"));
        }
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("hoard.Buffer is read-only"));
        }
        let bytes = &slf.get().bytes;
        let len = ffi::Py_ssize_t::try_from(bytes.len()).map_err(|_| PyBufferError::new_err("buffer too large"))?;
        // SAFETY: `view` is CPython's, non-null (checked). The bytes live as long as `slf`,
        // which the view holds a reference to (`PyBuffer_FillInfo` takes one), and `Bytes` never
        // moves or changes its contents. Read-only, as declared.
        let rc = unsafe { ffi::PyBuffer_FillInfo(view, slf.as_ptr(), bytes.as_ptr() as *mut _, len, 1, flags) };
        if rc == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }
}

/// Bytes of a Python object that supports the buffer protocol, copied (they are sent after the
/// GIL is released, and the caller may change them meanwhile).
pub fn bytes_of(data: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if let Ok(b) = data.cast::<pyo3::types::PyBytes>() {
        return Ok(Bytes::copy_from_slice(b.as_bytes()));
    }
    let buffer = byte_buffer(data).map_err(|_| {
        PyTypeError::new_err(format!(
            "expected a bytes-like object (bytes, bytearray, memoryview, a contiguous array), got {}",
            data.get_type()
        ))
    })?;
    Ok(Bytes::from(buffer.to_vec(data.py())?))
}

/// The buffer of `obj` as bytes, whatever its item type (a `float32` array is seen through
/// `memoryview(obj).cast("B")`, which needs it contiguous).
fn byte_buffer(obj: &Bound<'_, PyAny>) -> PyResult<PyBuffer<u8>> {
    match PyBuffer::<u8>::get(obj) {
        Ok(buffer) => Ok(buffer),
        Err(_) => {
            let view = pyo3::types::PyMemoryView::from(obj)?;
            PyBuffer::<u8>::get(&view.call_method1("cast", ("B",))?)
        }
    }
}

/// A caller's writable, contiguous buffer, held (and so pinned: a `bytearray` with an export
/// cannot be resized) while hoard writes into it with the GIL released.
pub struct Target {
    // Keeps the export alive; released (with the GIL) when dropped.
    _buffer: PyBuffer<u8>,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the pointer is to memory the held export keeps valid; only the thread that holds the
// `Target` writes through it.
unsafe impl Send for Target {}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("len", &self.len).finish_non_exhaustive()
    }
}

impl Target {
    /// The writable buffer of `obj`.
    pub fn of(obj: &Bound<'_, PyAny>) -> PyResult<Target> {
        let buffer = byte_buffer(obj).map_err(|_| {
            PyTypeError::new_err(format!(
                "expected a writable bytes-like object (bytearray, memoryview, a contiguous array), got {}",
                obj.get_type()
            ))
        })?;
        if buffer.readonly() {
            return Err(PyTypeError::new_err("the buffer is read-only"));
        }
        if !buffer.is_c_contiguous() {
            return Err(PyBufferError::new_err("the buffer is not contiguous"));
        }
        let (ptr, len) = (buffer.buf_ptr().cast::<u8>(), buffer.len_bytes());
        Ok(Target {
            _buffer: buffer,
            ptr,
            len,
        })
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Copy `bytes` to its start (at most its size; returns how many were copied).
    pub fn fill_from(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.len);
        // SAFETY: the export keeps `len` writable bytes at `ptr` alive and in place until it is
        // released when `self` drops, and `n <= len`; `bytes` is Rust memory, so the ranges do
        // not overlap. No `&mut [u8]` is made over the caller's memory: another thread may be
        // writing it too (a `read_into` of the same `bytearray` with the GIL released), which
        // is the caller's race on plain bytes, not aliasing of Rust references.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr, n) };
        n
    }
}
