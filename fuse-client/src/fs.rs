//! `HoardFs`: the `fuser::Filesystem` of a hoard mount.
//!
//! The kernel's requests arrive on a few FUSE session threads. None of them waits on the
//! network: every request that needs hoard is spawned on the tokio runtime with its reply
//! object, and the task answers the kernel when the client call returns. Requests therefore run
//! concurrently (reads of one file included), bounded by what the kernel keeps in flight
//! (`max_background` for reads ahead, one request per blocked application thread otherwise).
//!
//! This file holds the state and the trait's dispatch; the operations live in `fs/meta.rs`
//! (names and attributes), `fs/dir_ops.rs` (listings), `fs/io.rs` (open, read, write, close)
//! and `fs/namespace.rs` (mkdir, rmdir, unlink, rename).

use std::ffi::OsStr;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileHandle as Fh, Filesystem, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use hoard_client::Client;
use parking_lot::Mutex;
use tracing::Instrument;

use crate::attr;
use crate::config::FuseConfig;
use crate::dir::DirHandle;
use crate::handles::Handles;
use crate::inode::{Inodes, Kind, Node};
use crate::posix::{self, Posix};

mod dir_ops;
mod io;
mod meta;
mod namespace;
mod unsupported;

/// Largest read or write the kernel sends (`max_write`; reads are bounded by the same page count).
pub const MAX_IO_BYTES: u32 = 1 << 20;

/// The file system of a hoard mount. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HoardFs {
    inner: Arc<Inner>,
}

/// State shared by every request.
#[derive(Debug)]
pub(crate) struct Inner {
    client: Client,
    config: FuseConfig,
    runtime: tokio::runtime::Handle,
    inodes: Mutex<Inodes>,
    handles: Handles,
    dirs: Mutex<std::collections::HashMap<u64, Arc<tokio::sync::Mutex<DirHandle>>>>,
    next_dir: std::sync::atomic::AtomicU64,
    /// Version of each file whose pages the kernel's cache holds (from the last read open).
    cached_versions: Mutex<std::collections::HashMap<u64, String>>,
    /// Read buffers of [`MAX_IO_BYTES`] for reuse: a fresh megabyte per read would cost 256 page
    /// faults (and zeroed pages) every time.
    read_buffers: Mutex<Vec<bytes::BytesMut>>,
    /// When the mount started: the time directories show.
    started: SystemTime,
}

impl HoardFs {
    /// The file system of `client`'s cluster, running its requests on `runtime`.
    ///
    /// # Errors
    /// [`Errno::ENOENT`] when `config.mount` names no mount of the cluster.
    pub fn new(client: Client, config: FuseConfig, runtime: tokio::runtime::Handle) -> Result<HoardFs, Errno> {
        let root = match &config.mount {
            Some(name) if client.mounts().iter().any(|m| &m.name == name) => format!("/{name}"),
            Some(_) => return Err(Errno::ENOENT),
            None => String::new(),
        };
        Ok(HoardFs {
            inner: Arc::new(Inner {
                client,
                config,
                runtime,
                inodes: Mutex::new(Inodes::new(&root)),
                handles: Handles::default(),
                dirs: Mutex::default(),
                next_dir: std::sync::atomic::AtomicU64::new(1),
                cached_versions: Mutex::default(),
                read_buffers: Mutex::default(),
                started: SystemTime::now(),
            }),
        })
    }

    /// Run `op` on the runtime, inside a debug span named after the FUSE operation.
    fn spawn<F>(&self, span: tracing::Span, op: impl FnOnce(Arc<Inner>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let inner = self.inner.clone();
        self.inner.runtime.spawn(op(inner).instrument(span));
    }
}

impl Inner {
    /// The kernel forgot `nlookup` lookups of `ino` (see `crate::inode`).
    fn forget(&self, ino: u64, nlookup: u64) {
        tracing::trace!(ino, nlookup, "forget");
        let dropped = self.inodes.lock().forget(ino, nlookup);
        if dropped {
            self.cached_versions.lock().remove(&ino);
        }
    }

    /// Inode `ino`, if it is known and still has its path.
    fn node(&self, ino: u64) -> Result<Node, Errno> {
        match self.inodes.lock().get(ino) {
            Some(node) if !node.gone => Ok(node.clone()),
            _ => Err(Errno::ENOENT),
        }
    }

    /// The directory inode `ino`.
    fn dir_node(&self, ino: u64) -> Result<Node, Errno> {
        let node = self.node(ino)?;
        if node.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(node)
    }

    /// `EROFS` on a read-only mount.
    fn writable(&self) -> Result<(), Errno> {
        if self.config.read_only {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }

    fn attr_ttl(&self) -> Duration {
        self.config.attr_ttl
    }
}

/// A name from the kernel as UTF-8 (hoard keys are UTF-8; other names cannot exist).
fn utf8(name: &OsStr) -> Result<&str, Errno> {
    name.to_str().ok_or(Errno::EINVAL)
}

fn span(op: &'static str, ino: u64) -> tracing::Span {
    tracing::debug_span!("fuse", op, ino)
}

impl Filesystem for HoardFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let wanted = InitFlags::FUSE_ATOMIC_O_TRUNC
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_AUTO_INVAL_DATA
            // Shared mmap (numpy.memmap, safetensors) of files opened without the page cache.
            | InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP;
        let supported = wanted & config.capabilities();
        if let Err(missing) = config.add_capabilities(supported) {
            tracing::debug!("kernel lacks FUSE capabilities {missing:?}");
        }
        if let Err(nearest) = config.set_max_write(MAX_IO_BYTES) {
            let _ = config.set_max_write(nearest);
        }
        // The kernel offers its read-ahead window; a larger one is refused (raise it with
        // /sys/class/bdi/0:N/read_ahead_kb).
        if let Err(nearest) = config.set_max_readahead(MAX_IO_BYTES) {
            let _ = config.set_max_readahead(nearest);
        }
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        Ok(())
    }

    fn destroy(&mut self) {
        tracing::debug!(open = self.inner.handles.len(), "file system destroyed");
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = match utf8(name) {
            Ok(n) => n.to_owned(),
            Err(_) => return reply.error(Errno::ENOENT),
        };
        self.spawn(span("lookup", parent.0), move |fs| async move {
            match fs.lookup(parent.0, &name).await {
                Ok(attr) => reply.entry_with_ttls(&fs.attr_ttl(), &fs.config.entry_ttl, &attr, fuser::Generation(0)),
                // A negative entry: inode 0 with a timeout, which the kernel caches as "no such
                // name" (a create through this mount replaces it at once).
                Err(e) if e == Errno::ENOENT && !fs.config.negative_ttl.is_zero() => {
                    let none = attr::dir_attr(0, fs.started, &fs.config);
                    reply.entry_with_ttls(&Duration::ZERO, &fs.config.negative_ttl, &none, fuser::Generation(0));
                }
                Err(e) => reply.error(e),
            }
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<Fh>, reply: ReplyAttr) {
        self.spawn(span("getattr", ino.0), move |fs| async move {
            match fs.getattr(ino.0, fh.map(|f| f.0)).await {
                Ok(attr) => reply.attr(&fs.attr_ttl(), &attr),
                Err(e) => reply.error(e),
            }
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<Fh>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if atime.is_some() && mode.is_none() && uid.is_none() && gid.is_none() && mtime.is_none() {
            tracing::debug!(ino = ino.0, "access times are not kept");
        }
        let change = Posix {
            // The kernel sends the whole st_mode; a mode without type bits is a regular file's.
            mode: mode.map(|m| if m & 0o170_000 == 0 { m | posix::S_IFREG } else { m }),
            uid,
            gid,
            mtime: mtime.map(|t| match t {
                TimeOrNow::SpecificTime(t) => t,
                TimeOrNow::Now => SystemTime::now(),
            }),
        };
        let change = (change != Posix::default()).then_some(change);
        self.spawn(span("setattr", ino.0), move |fs| async move {
            match fs.setattr(ino.0, size, change, fh.map(|f| f.0)).await {
                Ok(attr) => reply.attr(&fs.attr_ttl(), &attr),
                Err(e) => reply.error(e),
            }
        });
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, _mode: u32, _umask: u32, reply: ReplyEntry) {
        let name = match utf8(name) {
            Ok(n) => n.to_owned(),
            Err(e) => return reply.error(e),
        };
        self.spawn(span("mkdir", parent.0), move |fs| async move {
            match fs.mkdir(parent.0, &name).await {
                Ok(attr) => reply.entry_with_ttls(&fs.attr_ttl(), &fs.config.entry_ttl, &attr, fuser::Generation(0)),
                Err(e) => reply.error(e),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = match utf8(name) {
            Ok(n) => n.to_owned(),
            Err(e) => return reply.error(e),
        };
        self.spawn(span("unlink", parent.0), move |fs| async move {
            reply_empty(reply, fs.remove(parent.0, &name, Kind::File).await);
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = match utf8(name) {
            Ok(n) => n.to_owned(),
            Err(e) => return reply.error(e),
        };
        self.spawn(span("rmdir", parent.0), move |fs| async move {
            reply_empty(reply, fs.remove(parent.0, &name, Kind::Dir).await);
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname) = match (utf8(name), utf8(newname)) {
            (Ok(a), Ok(b)) => (a.to_owned(), b.to_owned()),
            _ => return reply.error(Errno::EINVAL),
        };
        self.spawn(span("rename", parent.0), move |fs| async move {
            reply_empty(reply, fs.rename(parent.0, &name, newparent.0, &newname, flags).await);
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let pid = req.pid();
        self.spawn(span("open", ino.0), move |fs| async move {
            match fs.open(ino.0, flags.0, pid).await {
                Ok((fh, flags)) => reply.opened(Fh(fh), flags),
                Err(e) => reply.error(e),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: Fh,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let span = tracing::debug_span!("fuse", op = "read", ino = ino.0, offset, len = size);
        self.spawn(span, move |fs| async move {
            match fs.read(fh.0, offset, size).await {
                Ok(bytes) => {
                    reply.data(&bytes);
                    fs.reuse_read_buffer(bytes);
                }
                Err(e) => reply.error(e),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: Fh,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let data = bytes::Bytes::copy_from_slice(data);
        let span = tracing::debug_span!("fuse", op = "write", ino = ino.0, offset, len = data.len());
        self.spawn(span, move |fs| async move {
            match fs.write(fh.0, offset, &data).await {
                Ok(()) => reply.written(data.len() as u32),
                Err(e) => reply.error(e),
            }
        });
    }

    fn flush(&self, req: &Request, ino: INodeNo, fh: Fh, _lock_owner: LockOwner, reply: ReplyEmpty) {
        let pid = req.pid();
        self.spawn(span("flush", ino.0), move |fs| async move {
            reply_empty(reply, fs.flush(fh.0, pid).await);
        });
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: Fh,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.spawn(span("release", ino.0), move |fs| async move {
            fs.release(fh.0).await;
            reply.ok();
        });
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, fh: Fh, _datasync: bool, reply: ReplyEmpty) {
        self.spawn(span("fsync", ino.0), move |fs| async move {
            reply_empty(reply, fs.fsync(fh.0).await);
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.inner.opendir(ino.0) {
            Ok(fh) => reply.opened(Fh(fh), fuser::FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: Fh, offset: u64, reply: ReplyDirectory) {
        self.spawn(span("readdir", ino.0), move |fs| async move {
            fs.readdir(fh.0, offset, reply).await;
        });
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, fh: Fh, offset: u64, reply: ReplyDirectoryPlus) {
        self.spawn(span("readdirplus", ino.0), move |fs| async move {
            fs.readdirplus(fh.0, offset, reply).await;
        });
    }

    fn releasedir(&self, _req: &Request, ino: INodeNo, fh: Fh, _flags: OpenFlags, reply: ReplyEmpty) {
        self.spawn(span("releasedir", ino.0), move |fs| async move {
            fs.releasedir(fh.0).await;
            reply.ok();
        });
    }

    // `batch_forget` (whose argument type fuser keeps private) comes here once per inode.
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.inner.forget(ino.0, nlookup);
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: Fh, _datasync: bool, reply: ReplyEmpty) {
        // Renames, deletes and mkdirs are durable (per the mount's write mode) when they return.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // hoard has no fixed capacity to report: show plenty, so tools that check free space
        // before writing (cp, rsync, installers) go ahead.
        const BLOCKS: u64 = 1 << 40; // 4 PiB of 4 KiB blocks
        reply.statfs(BLOCKS, BLOCKS, BLOCKS, 1 << 32, 1 << 32, 4096, 255, 4096);
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        let (uid, gid) = (req.uid(), req.gid());
        self.spawn(span("access", ino.0), move |fs| async move {
            let checked = match fs.getattr(ino.0, None).await {
                Ok(attr) => attr::access(fs.config.read_only, &attr, uid, gid, mask),
                Err(e) => Err(e),
            };
            match checked {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            }
        });
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, _name: &OsStr, _size: u32, reply: fuser::ReplyXattr) {
        unsupported::xattr("getxattr", ino, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        unsupported::xattr("listxattr", ino, reply);
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(unsupported::refuse("setxattr", ino, unsupported::XATTR));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(unsupported::refuse("removexattr", ino, unsupported::XATTR));
    }

    fn symlink(&self, req: &Request, parent: INodeNo, name: &OsStr, target: &std::path::Path, reply: ReplyEntry) {
        let (name, target) = match (utf8(name), target.to_str()) {
            (Ok(n), Some(t)) => (n.to_owned(), t.to_owned()),
            _ => return reply.error(Errno::EINVAL),
        };
        let owner = owner_of(req, posix::S_IFLNK | 0o777);
        self.spawn(span("symlink", parent.0), move |fs| async move {
            match fs.symlink(parent.0, &name, &target, owner).await {
                Ok(attr) => reply.entry_with_ttls(&fs.attr_ttl(), &fs.config.entry_ttl, &attr, fuser::Generation(0)),
                Err(e) => reply.error(e),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.spawn(span("readlink", ino.0), move |fs| async move {
            match fs.readlink(ino.0).await {
                Ok(target) => reply.data(&target),
                Err(e) => reply.error(e),
            }
        });
    }

    fn link(&self, _req: &Request, ino: INodeNo, _newparent: INodeNo, _newname: &OsStr, reply: ReplyEntry) {
        reply.error(unsupported::refuse("link", ino, Errno::EPERM));
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        // Regular files come through `create`; fifos, sockets and devices cannot be stored.
        reply.error(unsupported::refuse("mknod", parent, Errno::EPERM));
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: Fh,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(unsupported::refuse("fallocate", ino, Errno::ENOTSUP));
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        ino_in: INodeNo,
        _fh_in: Fh,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: Fh,
        _offset_out: u64,
        _len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        // ENOSYS: the kernel stops asking and copies with reads and writes.
        reply.error(unsupported::refuse("copy_file_range", ino_in, Errno::ENOSYS));
    }

    fn lseek(&self, _req: &Request, ino: INodeNo, _fh: Fh, _offset: i64, _whence: i32, reply: fuser::ReplyLseek) {
        // ENOSYS: the kernel stops asking and seeks by itself (files have no holes here).
        reply.error(unsupported::refuse("lseek", ino, Errno::ENOSYS));
    }

    fn poll(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: Fh,
        _ph: fuser::PollNotifier,
        _events: fuser::PollEvents,
        _flags: fuser::PollFlags,
        reply: fuser::ReplyPoll,
    ) {
        // ENOSYS: the kernel stops asking and reports files as always ready.
        reply.error(unsupported::refuse("poll", ino, Errno::ENOSYS));
    }

    fn ioctl(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: Fh,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        // Not a terminal, no special controls (isatty probes land here).
        reply.error(unsupported::refuse("ioctl", ino, Errno::ENOTTY));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let name = match utf8(name) {
            Ok(n) => n.to_owned(),
            Err(e) => return reply.error(e),
        };
        let pid = req.pid();
        let owner = owner_of(req, posix::S_IFREG | (mode & !umask & 0o7777));
        self.spawn(span("create", parent.0), move |fs| async move {
            match fs.create(parent.0, &name, flags, owner, pid).await {
                Ok((attr, fh, open_flags)) => {
                    reply.created(&fs.attr_ttl(), &attr, fuser::Generation(0), Fh(fh), open_flags);
                }
                Err(e) => reply.error(e),
            }
        });
    }
}

/// The attributes a file created by `req`'s caller gets: `mode`, and the caller as its owner.
fn owner_of(req: &Request, mode: u32) -> Posix {
    Posix {
        mode: Some(mode),
        uid: Some(req.uid()),
        gid: Some(req.gid()),
        mtime: None,
    }
}

fn reply_empty(reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}
