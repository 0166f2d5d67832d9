//! hoard as a FUSE file system: unmodified tools and training scripts read and write hoard
//! through a mount point.
//!
//! [`HoardFs`] implements `fuser::Filesystem` on the native [`hoard_client::Client`]: every
//! mount of the cluster is a top-level directory (or one mount is the root), files are objects,
//! directories are what listings imply. Requests run on a tokio runtime, never on the FUSE
//! session threads, so a slow read does not hold up the rest. Writes follow hoard's write API:
//! files are written from their start or at their end, and appear when they are closed. What
//! differs from a local file system is in `docs/fuse.md`.
//!
//! This crate is the only one that knows fuser. Errors become errno values in one place
//! (`errno.rs`).
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hoard_fuse::FuseConfig;
//! let client = hoard_client::Client::from_config_file("cluster-configs/single-node.toml")?;
//! let config = FuseConfig { read_only: true, ..FuseConfig::default() };
//! // Serve /mnt/hoard until Ctrl-C, then unmount.
//! let ctrl_c = async { let _ = tokio::signal::ctrl_c().await; };
//! hoard_fuse::run(client, config, std::path::Path::new("/mnt/hoard"), ctrl_c).await?;
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//! None yet.
#![deny(clippy::undocumented_unsafe_blocks)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod attr;
mod config;
mod dir;
mod errno;
mod error;
mod fs;
mod handles;
mod inode;
mod posix;
mod session;

pub use config::FuseConfig;
pub use errno::{Op, errno};
pub use error::{FuseError, FuseResult};
pub use fs::{HoardFs, MAX_IO_BYTES};
pub use session::{Mounted, is_mounted, mount, run, unmount, unmount_lazy};
