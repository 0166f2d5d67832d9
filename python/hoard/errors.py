"""The exceptions hoard raises.

Every one is a :class:`HoardError`, and most also derive from the built-in class that callers
already catch: :class:`NotFound` is a :class:`FileNotFoundError`, :class:`AlreadyExists` a
:class:`FileExistsError`, and so on. The message carries the whole chain of causes.
"""

import errno


class HoardError(Exception):
    """Any failure of a hoard call."""


class NotFound(HoardError, FileNotFoundError):
    """No such file, directory or mount."""

    def __init__(self, message: str = "") -> None:
        super().__init__(errno.ENOENT, message)

    def __str__(self) -> str:
        return str(self.strerror)


class AlreadyExists(HoardError, FileExistsError):
    """The path exists and the call asked it not to."""

    def __init__(self, message: str = "") -> None:
        super().__init__(errno.EEXIST, message)

    def __str__(self) -> str:
        return str(self.strerror)


class NotEmpty(HoardError, OSError):
    """The directory is not empty and the call was not recursive."""

    def __init__(self, message: str = "") -> None:
        super().__init__(errno.ENOTEMPTY, message)

    def __str__(self) -> str:
        return str(self.strerror)


class NotADirectory(HoardError, NotADirectoryError):
    """A file and a directory met (a file written onto a directory's name, or the reverse)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(errno.ENOTDIR, message)

    def __str__(self) -> str:
        return str(self.strerror)


class NoSpace(HoardError, OSError):
    """The coordinator's journal disk is full, or the mount's cache-only capacity is used up."""

    def __init__(self, message: str = "") -> None:
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return str(self.strerror)


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
