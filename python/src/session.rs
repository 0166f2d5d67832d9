//! A Rust client and the tokio runtime that drives it, bound to the process that made them.
//!
//! A PyTorch `DataLoader` with `num_workers > 0` forks. The child inherits the parent's memory
//! but none of its threads: the runtime's workers, the RDMA completion thread and the tasks
//! holding connections are gone, and a lock one of them held stays held. Using the inherited
//! client there would hang. So every call checks the process id: a child builds its own session
//! from the same settings, and the inherited one is leaked, never dropped (dropping it would
//! wait for threads that do not exist in this process, or close descriptors the parent still
//! uses through the shared file table).

use std::future::Future;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hoard_client::{Client, ClientError, ClientResult, TransportChoice};
use hoard_transport::cluster::ClusterConfig;
use parking_lot::Mutex;
use pyo3::prelude::*;

use crate::errors::to_py;

/// A client, its runtime, and the process they belong to.
pub struct Session {
    pid: u32,
    runtime: ManuallyDrop<tokio::runtime::Runtime>,
    client: ManuallyDrop<Client>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.pid == std::process::id() {
            // SAFETY: not used again: this is the drop of their owner.
            unsafe {
                ManuallyDrop::drop(&mut self.client);
                ManuallyDrop::drop(&mut self.runtime);
            }
        }
        // In a forked child both are leaked (see the module's header).
    }
}

impl Session {
    fn open(config: &ClusterConfig, transport: Option<TransportChoice>) -> ClientResult<Session> {
        let mut builder = Client::builder()
            .cluster(config.clone())
            .client_name(format!("python-{}", std::process::id()));
        if let Some(t) = transport {
            builder = builder.transport(t);
        }
        let client = builder.build()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hoard-py")
            .enable_all()
            .build()
            .map_err(|e| {
                ClientError::Config(hoard_transport::cluster::ConfigError::Invalid(format!(
                    "cannot start the client's runtime: {e}"
                )))
            })?;
        Ok(Session {
            pid: std::process::id(),
            runtime: ManuallyDrop::new(runtime),
            client: ManuallyDrop::new(client),
        })
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether this session was made by this process.
    pub fn is_current(&self) -> bool {
        self.pid == std::process::id()
    }

    /// Run `f` on the runtime with the GIL released, turning its error into the Python
    /// exception that fits.
    pub fn run<T, F, Fut>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        T: Send,
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = ClientResult<T>> + Send,
    {
        let client = (*self.client).clone();
        self.block_on(py, f(client))?.map_err(to_py)
    }

    /// Run a future on the runtime with the GIL released. Every [`SIGNAL_CHECK`] the GIL is
    /// taken back to run Python's signal handlers: Ctrl-C raises `KeyboardInterrupt` in a long
    /// call (a `load`, a `sync`), dropping the future (a write is then abandoned).
    pub fn block_on<T: Send>(&self, py: Python<'_>, future: impl Future<Output = T> + Send) -> PyResult<T> {
        let mut future = std::pin::pin!(future);
        loop {
            let slice = py.detach(|| {
                self.runtime
                    .block_on(async { tokio::time::timeout(SIGNAL_CHECK, future.as_mut()).await })
            });
            match slice {
                Ok(done) => return Ok(done),
                Err(_) => py.check_signals()?,
            }
        }
    }

    /// A guard that makes this session's runtime the current one (for drops that spawn).
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.runtime.enter()
    }
}

/// How often a blocking call looks at Python's signals.
const SIGNAL_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// What a `hoard.Client` is made from, and its session in the current process.
#[derive(Debug)]
pub struct Sessions {
    path: PathBuf,
    config: ClusterConfig,
    transport: Option<TransportChoice>,
    current: Mutex<Arc<Session>>,
}

impl Sessions {
    /// Load the cluster config and open a session.
    pub fn open(path: &Path, transport: Option<TransportChoice>) -> ClientResult<Sessions> {
        let config = ClusterConfig::load(path)?;
        let session = Session::open(&config, transport)?;
        Ok(Sessions {
            path: path.to_owned(),
            config,
            transport,
            current: Mutex::new(Arc::new(session)),
        })
    }

    /// The cluster config file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The transport asked for, if any.
    pub fn transport(&self) -> Option<TransportChoice> {
        self.transport
    }

    /// The cluster config.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// This process's session, opened now if the current one was inherited through `fork`.
    pub fn get(&self) -> PyResult<Arc<Session>> {
        let mut current = self.current.lock();
        if !current.is_current() {
            // Dropping the inherited session leaks its client and runtime (see `Drop`).
            *current = Arc::new(Session::open(&self.config, self.transport).map_err(to_py)?);
        }
        Ok(current.clone())
    }
}
