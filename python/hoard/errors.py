"""The exceptions hoard raises.

Every one is a :class:`HoardError`, and most also derive from the built-in class that callers
already catch: :class:`NotFound` is a :class:`FileNotFoundError`, :class:`AlreadyExists` a
:class:`FileExistsError`, and so on. The message carries the whole chain of causes.
"""

import errno
from typing import Any


class HoardError(Exception):
    """Any failure of a hoard call."""


class _OSErrorWithErrno(HoardError, OSError):
    """A hoard error that is also an :class:`OSError` with a fixed ``errno``: built from the
    message alone, and pickled as such (``OSError`` would pickle it as ``(errno, message)``)."""

    errno_value = 0

    def __init__(self, message: str = "") -> None:
        super().__init__(self.errno_value, message)

    def __str__(self) -> str:
        return str(self.strerror)

    def __reduce__(self) -> Any:
        return (type(self), (self.strerror,))


class NotFound(_OSErrorWithErrno, FileNotFoundError):
    """No such file, directory or mount."""

    errno_value = errno.ENOENT


class AlreadyExists(_OSErrorWithErrno, FileExistsError):
    """The path exists and the call asked it not to."""

    errno_value = errno.EEXIST


class NotEmpty(_OSErrorWithErrno):
    """The directory is not empty and the call was not recursive."""

    errno_value = errno.ENOTEMPTY


class NotADirectory(_OSErrorWithErrno, NotADirectoryError):
    """A file and a directory met (a file written onto a directory's name, or the reverse)."""

    errno_value = errno.ENOTDIR


class NoSpace(_OSErrorWithErrno):
    """The coordinator's journal disk is full, or the mount's cache-only capacity is used up."""

    errno_value = errno.ENOSPC


class InvalidPath(HoardError, ValueError):
    """The path is not of the form ``/MOUNT/key``."""


class InvalidArgument(HoardError, ValueError):
    """The request was refused as invalid (metadata the store cannot keep, a bad range...)."""


class Changed(HoardError):
    """The opened file was replaced: the version being read is gone."""


class Unavailable(HoardError, ConnectionError):
    """No worker could serve the call and the under-store could not either."""


class ConfigError(HoardError):
    """The cluster config is missing or invalid."""


__all__ = [
    "AlreadyExists",
    "Changed",
    "ConfigError",
    "HoardError",
    "InvalidArgument",
    "InvalidPath",
    "NoSpace",
    "NotADirectory",
    "NotEmpty",
    "NotFound",
    "Unavailable",
]
