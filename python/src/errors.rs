//! Rust errors as Python exceptions.
//!
//! The exception classes live in Python (`hoard/errors.py`) so that they can also derive from the
//! built-in classes callers already catch: `hoard.NotFound` is a `FileNotFoundError`,
//! `hoard.AlreadyExists` a `FileExistsError`, and so on. The message carries the whole cause
//! chain, outermost first.

use hoard_client::ClientError;
use hoard_transport::wire::Status;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyModule, PyType};

/// The error and its causes, `outer: inner: innermost`.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        // Some errors repeat their source in their own message.
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

/// The name of the `hoard.errors` class for `e`.
fn class_of(e: &ClientError) -> &'static str {
    if e.is_not_found() {
        return "NotFound";
    }
    match e {
        ClientError::NoSuchMount { .. } => "NotFound",
        ClientError::InvalidPath { .. } => "InvalidPath",
        ClientError::AlreadyExists { .. } => "AlreadyExists",
        ClientError::Changed { .. } | ClientError::Unstable { .. } => "Changed",
        ClientError::Unavailable { .. } => "Unavailable",
        ClientError::Config(_) => "ConfigError",
        ClientError::Worker { status, .. } => match status {
            Status::NotEmpty => "NotEmpty",
            Status::NotADirectory => "NotADirectory",
            Status::NoSpace => "NoSpace",
            Status::InvalidArgument => "InvalidArgument",
            Status::Timeout | Status::Overloaded | Status::ShuttingDown | Status::UfsUnavailable => "Unavailable",
            _ => "HoardError",
        },
        _ => "HoardError",
    }
}

/// The Python exception for a client error.
pub fn to_py(e: ClientError) -> PyErr {
    raise(class_of(&e), chain(&e))
}

/// An exception of the `hoard.errors` class `name` with `message`.
pub fn raise(name: &'static str, message: String) -> PyErr {
    Python::attach(|py| match class(py, name) {
        Ok(class) => PyErr::from_type(class, message),
        Err(e) => e,
    })
}

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module = MODULE.get_or_try_init(py, || PyModule::import(py, "hoard.errors").map(Bound::unbind))?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}
