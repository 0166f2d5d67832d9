//! The RDMA types of a build without the `rdma` feature: they cannot be made, and every
//! constructor says why.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use super::{ClientSettings, RdmaError, ReadFailure, ServerSettings};
use crate::region::StableMemory;
use crate::tcp::TcpTransport;
use crate::wire::{PageLocation, RdmaConnected, RdmaEndpoint};

fn not_built() -> RdmaError {
    RdmaError::Unavailable("hoard was built without the `rdma` feature (cargo build --features rdma)".into())
}

/// Uninhabited: no value of these types exists in this build.
#[derive(Debug)]
enum Never {}

/// A worker's RDMA devices (not in this build).
#[derive(Debug)]
pub struct RdmaServer(Never);

/// A worker's end of a queue pair (not in this build).
#[derive(Debug)]
pub struct ServerQp(Never);

/// This process's RDMA device (not in this build).
#[derive(Debug)]
pub struct ClientDevice(Never);

/// A queue pair to a worker (not in this build).
#[derive(Debug)]
pub struct RdmaLink(Never);

impl RdmaServer {
    /// Always [`RdmaError::Unavailable`].
    ///
    /// # Errors
    /// Always.
    pub fn open(_: &ServerSettings) -> Result<RdmaServer, RdmaError> {
        Err(not_built())
    }

    /// The devices in use.
    pub fn device_names(&self) -> Vec<String> {
        match self.0 {}
    }

    /// Register a region.
    ///
    /// # Errors
    /// Never returns.
    pub fn register(
        &mut self,
        _: u32,
        _: Arc<dyn StableMemory>,
        _: Option<(Arc<dyn StableMemory>, u64)>,
    ) -> Result<(), RdmaError> {
        match self.0 {}
    }

    /// Bytes registered.
    pub fn registered_bytes(&self) -> u64 {
        match self.0 {}
    }

    /// Set up a queue pair.
    ///
    /// # Errors
    /// Never returns.
    pub fn accept(&self, _: &RdmaEndpoint) -> Result<(RdmaConnected, ServerQp), RdmaError> {
        match self.0 {}
    }
}

impl ClientDevice {
    /// Always [`RdmaError::Unavailable`].
    ///
    /// # Errors
    /// Always.
    pub fn shared(_: &ClientSettings) -> Result<Arc<ClientDevice>, RdmaError> {
        Err(not_built())
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        match self.0 {}
    }
}

impl RdmaLink {
    /// Set up a queue pair.
    ///
    /// # Errors
    /// Never returns.
    pub async fn connect(_: &TcpTransport, device: &Arc<ClientDevice>) -> Result<RdmaLink, RdmaError> {
        match device.0 {}
    }

    /// The worker's device.
    pub fn worker_device(&self) -> &str {
        match self.0 {}
    }

    /// Whether the queue pair failed.
    pub fn is_failed(&self) -> bool {
        match self.0 {}
    }

    /// Read pages.
    ///
    /// # Errors
    /// Never returns.
    pub async fn read(
        &self,
        _: &[PageLocation],
        _: u64,
        _: std::ops::Range<u64>,
        _: &mut BytesMut,
        _: Instant,
        _: bool,
    ) -> Result<(), ReadFailure> {
        match self.0 {}
    }
}
