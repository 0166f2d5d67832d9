//! How a mount behaves: what it shows, how long the kernel may cache, who may use it.

use std::time::Duration;

/// The default read-ahead window ([`FuseConfig::read_ahead`]).
pub const DEFAULT_READ_AHEAD: u64 = 1 << 20;

/// Configuration of a hoard FUSE mount (the `hoard mount` flags, typed).
#[derive(Debug, Clone)]
pub struct FuseConfig {
    /// Show only this mount, at the root of the file system. `None`: every mount of the
    /// cluster is a top-level directory.
    pub mount: Option<String>,
    /// Refuse every change (`EROFS`) and mount read-only.
    pub read_only: bool,
    /// Let other users than the one mounting use the file system (`allow_other`, with the
    /// kernel checking the permission bits).
    pub allow_other: bool,
    /// How long the kernel may trust a name → inode answer.
    pub entry_ttl: Duration,
    /// How long the kernel may trust a size and modification time.
    pub attr_ttl: Duration,
    /// How long the kernel may trust that a name does not exist (a negative lookup).
    pub negative_ttl: Duration,
    /// Read through the kernel's page cache (dropped at every open unless the file's version
    /// is the one the cache holds). `false`: every read goes to hoard (direct I/O).
    pub page_cache: bool,
    /// The kernel's read-ahead window for files read through the page cache (its sysfs knob,
    /// which only root may set). Larger than one request (1 MiB), it keeps several requests of a
    /// sequential reader in flight at once.
    pub read_ahead: u64,
    /// FUSE session threads reading requests from the kernel. The work itself runs on the
    /// tokio runtime, so a few are enough.
    pub threads: usize,
    /// Owner of every file and directory.
    pub uid: u32,
    /// Group of every file and directory.
    pub gid: u32,
    /// Permission bits of files.
    pub file_mode: u16,
    /// Permission bits of directories.
    pub dir_mode: u16,
}

impl Default for FuseConfig {
    /// Every mount, read-write, 1 s TTLs, page cache on, owned by the current user.
    fn default() -> Self {
        FuseConfig {
            mount: None,
            read_only: false,
            allow_other: false,
            entry_ttl: Duration::from_secs(1),
            attr_ttl: Duration::from_secs(1),
            negative_ttl: Duration::from_secs(1),
            page_cache: true,
            read_ahead: DEFAULT_READ_AHEAD,
            threads: 4,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            file_mode: 0o644,
            dir_mode: 0o755,
        }
    }
}
