//! hoard's S3-compatible endpoint: point an S3 client at it instead of S3 and keep every
//! `s3://` path and tool.
//!
//! The gateway implements the [`s3s`] crate's [`s3s::S3`] trait on the native client
//! ([`hoard_client::Client`]): each hoard mount is a bucket, each key a file of the mount. Reads
//! go to the workers that own the file's chunks (a miss is filled from the under-store), writes to
//! the mount's coordinator. s3s does the HTTP and XML and checks AWS Signature V4 (headers and
//! presigned URLs); this crate answers the operations, checks what s3s leaves to it (`Content-MD5`,
//! `x-amz-checksum-*`, conditional headers, ranges) and streams bodies in both directions without
//! holding an object in memory.
//!
//! Multipart uploads stage their parts in hoard (the mount's staging directory, never written to
//! the under-store) and complete by a *compose*: the object is made of the parts' stored bytes
//! without copying them. `CopyObject` within a mount is a compose of one source (a server-side copy
//! in the under-store too).
//!
//! `hoard gateway` serves it standalone; a worker with a `gateway` address serves it in its own
//! process. See `docs/gateway.md`.
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = hoard_client::Client::from_config_file("cluster.toml")?;
//! let gateway = hoard_gateway::Gateway::new(client);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
//! // Serves until the future given as `shutdown` completes (here: never).
//! hoard_gateway::serve(listener, gateway, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! None.

#![forbid(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

#[macro_use]
mod macros;

mod auth;
mod body;
mod errors;
mod etag;
mod listing;
mod meta;
pub mod metrics;
mod multipart;
mod objects;
mod server;
mod service;
mod sweeper;

pub use server::serve;
pub use service::Gateway;
