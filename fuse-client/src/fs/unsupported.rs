//! Operations hoard does not support: each answers the errno an application expects from a
//! file system without the feature, with a debug log (fuser's defaults log a warning per call).

use fuser::{Errno, INodeNo, ReplyXattr};

/// `errno`, logged at debug level.
pub(super) fn refuse(op: &str, ino: INodeNo, errno: Errno) -> Errno {
    tracing::debug!(op, ino = ino.0, "not supported: {errno:?}");
    errno
}

/// Extended attributes: hoard stores none. The answer is `ENOSYS`, which the kernel remembers
/// for the mount and turns into `ENOTSUP` for the application (`cp -a` and `tar` carry on without
/// them): it then stops asking, where it would otherwise ask for `security.capability` before
/// every write.
pub(super) const XATTR: Errno = Errno::ENOSYS;

/// `getxattr`, `listxattr`: see [`XATTR`].
pub(super) fn xattr(op: &str, ino: INodeNo, reply: ReplyXattr) {
    reply.error(refuse(op, ino, XATTR));
}
