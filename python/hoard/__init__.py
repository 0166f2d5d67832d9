"""hoard: a distributed cache over S3, from Python.

>>> import hoard
>>> client = hoard.Client()                      # HOARD_CLUSTER, or ~/.hoard/cluster.toml
>>> client.put("/data/hello.txt", b"hello")
>>> client.read("/data/hello.txt")
b'hello'
>>> with hoard.open(client, "/data/big.bin", "rb") as f:
...     header = f.read(16)

Paths are ``/MOUNT/key``, as in the ``hoard`` CLI. Every call that waits releases the GIL.
A client works in forked children (a PyTorch ``DataLoader``'s workers): each process opens its
own connections on its first call.

Submodules: :mod:`hoard.fsspec` (the ``hoard://`` file system), :mod:`hoard.torch` (datasets
and checkpoints; imports PyTorch), :mod:`hoard.errors`.
"""

from hoard._hoard import Buffer, Client, FileInfo, Reader, Writer, __version__
from hoard._io import ReadFile, WriteFile, open
from hoard.errors import (
    AlreadyExists,
    Changed,
    ConfigError,
    HoardError,
    InvalidArgument,
    InvalidPath,
    NoSpace,
    NotADirectory,
    NotEmpty,
    NotFound,
    Unavailable,
)

__all__ = [
    "AlreadyExists",
    "Buffer",
    "Changed",
    "Client",
    "ConfigError",
    "FileInfo",
    "HoardError",
    "InvalidArgument",
    "InvalidPath",
    "NoSpace",
    "NotADirectory",
    "NotEmpty",
    "NotFound",
    "ReadFile",
    "Reader",
    "Unavailable",
    "WriteFile",
    "Writer",
    "__version__",
    "open",
]
