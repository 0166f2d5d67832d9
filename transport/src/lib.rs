//! hoard's transport layer: the wire protocol and the ways its frames travel.
//!
//! Workers and clients never link each other; they speak only through this crate. It holds
//! - [`wire`]: the message types (rkyv-archived, validated on receipt), the stable [`wire::Status`]
//!   codes and the frame format (header + archived message + raw payload);
//! - [`Transport`]: the client side of a connection to one worker, and [`tcp`], its TCP
//!   implementation on tokio together with the worker-side server loop;
//! - [`cluster`]: the cluster configuration file that every process of a cluster reads;
//! - [`ring`]: placement on a consistent-hash ring, which clients and workers must agree on;
//! - [`region`]: registered memory regions (the huge-page arena cut into page slots), the only
//!   module with `unsafe` code.
//!
//! - [`shm`]: shared memory with a worker on the same host (regions mapped read-only);
//! - [`rdma`]: one-sided RDMA READs of a worker's registered regions (behind the `rdma` feature).
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hoard_transport::{Transport, tcp::{TcpTransport, ConnectOptions}, wire::{Request, StatRequest}};
//! let conn = TcpTransport::connect("127.0.0.1:7301", ConnectOptions::new("secret-token")).await?;
//! let reply = conn.call(Request::Stat(StatRequest { mount: "data".into(), path: "a.bin".into(), fresh: false }), Default::default()).await?;
//! println!("{:?}", reply.message);
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//! - `rdma`: the RDMA transport, through `rdma-sys` (needs libibverbs and librdmacm to build).
//!   Without it, [`rdma`]'s constructors say RDMA is not built in, and everything else works.
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cluster;
mod error;
pub mod rdma;
#[allow(unsafe_code)] // The mapping and views of shared memory; see the module's documentation.
pub mod region;
pub mod ring;
pub mod shm;
pub mod tcp;
pub mod wire;

use async_trait::async_trait;
use bytes::BytesMut;

pub use error::{TransportError, TransportResult};
pub use wire::{Payload, Reply};

/// Which kind of transport a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Framed messages over a TCP stream; works everywhere.
    Tcp,
    /// Control over a Unix socket, page bytes copied from the worker's shared memory.
    Shm,
    /// Control over TCP, page bytes read with one-sided RDMA READs.
    Rdma,
}

impl TransportKind {
    /// Lower-case name, as used in metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Shm => "shm",
            TransportKind::Rdma => "rdma",
        }
    }
}

/// The client side of a connection to one worker: send a request, get its reply.
///
/// Many calls may be in flight on one transport at once; replies are matched to calls by request
/// id. Implementations: [`tcp::TcpTransport`].
#[async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// The kind of this transport.
    fn kind(&self) -> TransportKind;

    /// Send `request` (with an optional raw `payload`) and wait for its reply.
    ///
    /// A reply carrying [`wire::Response::Error`] is returned as `Ok`: it is the worker's answer.
    ///
    /// # Errors
    /// [`TransportError`] when the connection fails or closes before the reply arrives.
    async fn call(&self, request: wire::Request, payload: Payload) -> TransportResult<Reply>;

    /// Send `request` and wait for its reply, appending the reply's payload to `recv`. When
    /// `recv` has enough spare capacity the bytes land there directly: a client reading a large
    /// range hands each request its slice of one buffer and gets the range back without a copy.
    ///
    /// # Errors
    /// As [`Transport::call`].
    async fn call_into(&self, request: wire::Request, recv: BytesMut) -> TransportResult<(wire::Response, BytesMut)>;

    /// Whether the connection is known to be dead (then every call fails at once).
    fn is_closed(&self) -> bool;
}
