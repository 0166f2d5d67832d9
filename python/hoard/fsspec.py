"""The ``hoard://`` file system for fsspec, and so for pandas, xarray, dask, zarr...

>>> import fsspec
>>> fs = fsspec.filesystem("hoard")                  # HOARD_CLUSTER, or ~/.hoard/cluster.toml
>>> fs.pipe_file("/data/hello.txt", b"hello")
>>> fs.cat_file("hoard:///data/hello.txt", start=1)
b'ello'
>>> with fsspec.open("hoard:///data/notes.txt", "w", cluster="/etc/hoard/cluster.toml") as f:
...     f.write("hi")

A file being written appears when it is closed. ``fs.open`` gives files whose ``with`` block
abandons the file when it raises (and a file dropped unclosed is abandoned too);
``fsspec.open``'s ``OpenFile`` closes, and so publishes, it whatever happens.

Paths are ``/MOUNT/key``, with or without the protocol: ``hoard:///MOUNT/key`` and
``hoard://MOUNT/key`` name the same file. The root ``/`` lists the mounts.

Directories are object-store directories (see ``docs/semantics.md``): a directory exists while
something is under it, or once ``mkdir`` has left its marker. No listings are cached: every call
sees the cluster as it is.
"""

from __future__ import annotations

import errno
import os
import posixpath
from datetime import datetime, timezone
from glob import has_magic
from hashlib import sha256
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem
from fsspec.utils import isfilelike

from hoard._hoard import Client, FileInfo, Reader
from hoard._io import AbortingTextIO, _abandon
from hoard.errors import NotFound

Info = Dict[str, Any]


class HoardFileSystem(AbstractFileSystem):
    """A hoard cluster as an fsspec file system.

    ``cluster``: the cluster config (default: ``HOARD_CLUSTER``, then ``~/.hoard/cluster.toml``);
    ``transport``: passed to :class:`hoard.Client`.

    Files are written whole: a file opened with ``wb`` (or ``xb``, failing if it exists, or
    ``ab``, appending) appears when it is closed, and leaving a ``with`` block with an exception
    abandons it. A file opened with ``rb`` reads the version it had when opened and raises
    :class:`hoard.Changed` once that version is gone. Files have no creation time
    (``created`` is not supported), and no URL can be signed (``sign``).
    """

    protocol = "hoard"
    root_marker = "/"

    def __init__(
        self,
        cluster: Union[str, os.PathLike, None] = None,
        transport: Optional[str] = None,
        **storage_options: Any,
    ) -> None:
        super().__init__(cluster=cluster, transport=transport, **storage_options)
        self.client = Client(cluster, transport=transport)
        self._mounts = frozenset(self.client.mounts)

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        """``hoard:///m/k``, ``hoard://m/k``, ``/m/k/`` and ``m/k`` all become ``/m/k``; the root
        is ``/``."""
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return "/" + super()._strip_protocol(path).lstrip("/")

    # Information

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Union[List[Info], List[str]]:
        """The entries of the directory ``path`` (of a file: the file itself)."""
        path = self._strip_protocol(path)
        if path == "/":
            entries = [_directory(f"/{m}") for m in sorted(self._mounts)]
        else:
            entries = []
            found = False
            for entry in self.client.list(path):
                if entry.path.rstrip("/") == path:
                    # The directory's own marker (`mkdir`): not an entry, but it exists.
                    found = True
                else:
                    entries.append(_entry(entry))
            if not entries and not found and not _is_mount(path):
                # Nothing under it: a file lists as itself (fsspec's convention), or raises.
                entries = [_file(self.client.stat(path))]
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs: Any) -> Info:
        path = self._strip_protocol(path)
        if path == "/" or _is_mount(path):
            if path != "/" and path[1:] not in self._mounts:
                raise FileNotFoundError(errno.ENOENT, "no such mount", path)
            return _directory(path)
        try:
            return _file(self.client.stat(path))
        except NotFound:
            if self.client.list(path):
                return _directory(path)
            raise

    def exists(self, path: str, **kwargs: Any) -> bool:
        # Unlike fsspec's default, only "not found" means False: a cluster that cannot be reached
        # raises rather than passing for a missing file.
        try:
            self.info(path)
        except FileNotFoundError:
            return False
        return True

    def isfile(self, path: str) -> bool:
        path = self._strip_protocol(path)
        if path == "/" or _is_mount(path):
            return False
        try:
            return self.client.exists(path)
        except NotFound:  # no such mount
            return False

    def isdir(self, path: str) -> bool:
        path = self._strip_protocol(path)
        if path == "/" or _is_mount(path):
            return path == "/" or path[1:] in self._mounts
        try:
            # The listing of a file (of the prefix `file/`) is empty: no stat is needed.
            return bool(self.client.list(path))
        except NotFound:
            return False

    def find(
        self,
        path: str,
        maxdepth: Optional[int] = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Union[List[str], Dict[str, Info]]:
        """Every file under ``path`` (and every directory, with ``withdirs``)."""
        path = self._strip_protocol(path)
        if withdirs or path == "/":
            # A recursive listing holds files only (not the markers of empty directories) and
            # stays within a mount: walk the directories instead.
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        found: Dict[str, Info] = {}
        for entry in self.client.list(path, recursive=True):
            relative = entry.path[len(path) + 1 :]
            # The listing holds the directory's own marker (`dir/`), never those under it.
            if relative and (maxdepth is None or relative.count("/") < maxdepth):
                found[entry.path] = _entry(entry)
        if not found and not _is_mount(path):
            try:
                found[path] = _file(self.client.stat(path))
            except NotFound:
                pass
        return found if detail else sorted(found)

    def modified(self, path: str) -> datetime:
        """When the file was last written."""
        mtime = self._stat(path).mtime
        if mtime is None:
            raise ValueError(f"{path}: the under-store gives no modification time")
        return datetime.fromtimestamp(mtime, tz=timezone.utc)

    def ukey(self, path: str) -> str:
        """The file's version tag: it changes whenever the file's content does."""
        return str(self._stat(path).version)

    def checksum(self, path: str) -> int:
        """The version tag, as an int (fsspec's form of a checksum)."""
        return int(sha256(self.ukey(path).encode()).hexdigest()[:16], 16)

    # Reading and writing

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        """As fsspec's ``open``; a text file being written publishes at ``close`` only: a
        ``with`` block that raises abandons it (a plain ``io.TextIOWrapper`` would close it).
        ``fsspec.open(...)`` returns fsspec's own ``OpenFile``, whose ``with`` block closes the
        file whatever happens: use ``fs.open`` for the abandon-on-error behaviour."""
        if "b" in mode or "r" in mode:
            return super().open(path, mode, **kwargs)
        text = {k: kwargs.pop(k) for k in ("encoding", "errors", "newline") if k in kwargs}
        binary = super().open(path, mode.replace("t", "") + "b", **kwargs)
        return AbortingTextIO(binary, **text)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: Optional[int] = None,
        autocommit: bool = True,
        cache_options: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> "HoardFile":
        return HoardFile(
            self,
            self._strip_protocol(path),
            mode,
            block_size=block_size,
            autocommit=autocommit,
            cache_options=cache_options,
            **kwargs,
        )

    def cat_file(
        self, path: str, start: Optional[int] = None, end: Optional[int] = None, **kwargs: Any
    ) -> bytes:
        """Bytes ``[start, end)`` of the file; a negative ``start`` or ``end`` counts from its
        end, as in slices."""
        path = self._strip_protocol(path)
        if (start or 0) >= 0 and (end is None or end >= 0):
            start = start or 0
            length = None if end is None else max(end - start, 0)
            try:
                return self.client.read(path, start, length)
            except NotFound:
                self._raise_if_dir(path)
                raise
        # An offset from the end needs the size: read the version the size is of.
        reader = self._reader(path)
        first, last = _slice(start, end, reader.size)
        return reader.read(first, max(last - first, 0))

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        """Write a whole file; ``mode="create"`` fails with :class:`FileExistsError` if it
        exists."""
        path = self._strip_protocol(path)
        if mode == "create":
            with self.client.create(path, exclusive=True) as writer:
                writer.write(value)
        else:
            self.client.put(path, value)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy a file, streaming it through this process; a directory is copied as an empty
        one (``copy`` copies what is in it file by file)."""
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        try:
            reader = self._reader(src)
        except IsADirectoryError:
            self.client.mkdir(dst)
            return
        # A `with` block aborts the writer if the copy fails: `dst` keeps what it had.
        with self.client.create(dst) as writer:
            for chunk in self._chunks(reader):
                writer.write(chunk)

    def get_file(
        self,
        rpath: str,
        lpath: Any,
        callback: Callback = DEFAULT_CALLBACK,
        outfile: Any = None,
        **kwargs: Any,
    ) -> None:
        """Copy a file to ``lpath`` (or into the file object ``outfile``), in blocks of
        ``blocksize`` bytes."""
        rpath = self._strip_protocol(rpath)
        if outfile is None and isfilelike(lpath):
            outfile = lpath
        try:
            reader = self._reader(rpath)
        except IsADirectoryError:
            if outfile is not None:
                raise
            os.makedirs(lpath, exist_ok=True)
            return
        callback.set_size(reader.size)
        if outfile is not None:
            self._copy_out(reader, outfile.write, callback)
            return
        os.makedirs(os.path.dirname(os.path.abspath(lpath)), exist_ok=True)
        with open(lpath, "wb") as f:
            self._copy_out(reader, f.write, callback)

    def put_file(
        self,
        lpath: Any,
        rpath: str,
        callback: Callback = DEFAULT_CALLBACK,
        mode: str = "overwrite",
        **kwargs: Any,
    ) -> None:
        """Copy the local file ``lpath`` to ``rpath``, in blocks of ``blocksize`` bytes; a local
        directory becomes a directory. ``mode="create"`` fails if ``rpath`` exists."""
        rpath = self._strip_protocol(rpath)
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        with open(lpath, "rb") as f:
            callback.set_size(os.fstat(f.fileno()).st_size)
            # Parents need no markers: object-store directories exist by what is in them.
            with self.client.create(rpath, exclusive=mode == "create") as writer:
                buffer = bytearray(self.blocksize)
                view = memoryview(buffer)
                while True:
                    n = f.readinto(buffer)
                    if not n:
                        break
                    writer.write(view[:n])
                    callback.relative_update(n)

    # Changing the namespace

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Create a directory (its marker); fails with :class:`FileExistsError` if the path
        exists. Parents need no markers: with ``create_parents=False`` the parent must exist."""
        path = self._strip_protocol(path)
        if self.exists(path):
            raise FileExistsError(errno.EEXIST, "already exists", path)
        parent = self._parent(path)
        if not create_parents and not self.isdir(parent):
            raise FileNotFoundError(errno.ENOENT, "no such directory", parent)
        self.client.mkdir(path)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        path = self._strip_protocol(path)
        if not exist_ok:
            self.mkdir(path)
        elif path == "/" or _is_mount(path):
            self.info(path)  # raises for a mount that does not exist
        else:
            # hoard's mkdir leaves an existing directory as it is, and refuses a file.
            self.client.mkdir(path)

    def rmdir(self, path: str) -> None:
        """Remove an empty directory (a non-empty one raises :class:`hoard.NotEmpty`)."""
        path = self._strip_protocol(path)
        if self.isfile(path):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        self.client.delete(path)

    def rm_file(self, path: str) -> None:
        self.client.delete(self._strip_protocol(path))

    def rm(
        self, path: Union[str, List[str]], recursive: bool = False, maxdepth: Optional[int] = None
    ) -> None:
        """Delete files, or with ``recursive`` directories and everything in them (each in one
        call to the cluster)."""
        if maxdepth is not None:
            # Depth-limited: file by file, deepest first, as fsspec does it.
            super().rm(path, recursive=recursive, maxdepth=maxdepth)
            return
        deleted = set()
        for p in self.expand_path(path):
            if not any(parent in deleted for parent in _parents(p)):
                self.client.delete(p, recursive=recursive)
                deleted.add(p)

    def mv(
        self,
        path1: Union[str, List[str]],
        path2: Union[str, List[str]],
        recursive: bool = False,
        maxdepth: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        """Move a file or a directory; onto an existing directory (or a path ending with ``/``),
        into it. Within a mount a move is one rename, however much it moves; a directory moves
        whole, as with ``os.rename``. Lists, globs, ``maxdepth`` and moves between mounts copy
        then delete, as fsspec does."""
        if (
            not isinstance(path1, str)
            or not isinstance(path2, str)
            or has_magic(path1)
            or path1.endswith("/")  # "the contents of": fsspec's copy semantics
            or maxdepth is not None
        ):
            super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)
            return
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        if path2.endswith("/") or self.isdir(dst):
            dst = posixpath.join(dst, posixpath.basename(src))
        if src == dst:
            return
        if _mount(src) == _mount(dst):
            self.client.rename(src, dst)
        else:
            self.copy(src, dst, recursive=True)
            self.rm(src, recursive=True)

    # Helpers

    def _stat(self, path: str) -> FileInfo:
        """The file at ``path``; :class:`IsADirectoryError` for a directory."""
        path = self._strip_protocol(path)
        try:
            return self.client.stat(path)
        except NotFound:
            self._raise_if_dir(path)
            raise

    def _reader(self, path: str) -> Reader:
        """The file at ``path``, opened; :class:`IsADirectoryError` for a directory."""
        try:
            return self.client.open(path)
        except NotFound:
            self._raise_if_dir(path)
            raise

    def _raise_if_dir(self, path: str) -> None:
        if self.isdir(path):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)

    def _chunks(self, reader: Reader) -> Iterator[Any]:
        """The opened file in blocks of ``blocksize`` bytes (``hoard.Buffer``, not copied)."""
        offset = 0
        while offset < reader.size:
            chunk = reader.read_buffer(offset, self.blocksize)
            offset += len(chunk)
            yield chunk

    def _copy_out(self, reader: Reader, write: Callable[[Any], Any], callback: Callback) -> None:
        for chunk in self._chunks(reader):
            write(chunk)
            callback.relative_update(len(chunk))


class HoardFile(AbstractBufferedFile):
    """A file of a :class:`HoardFileSystem`.

    ``rb``: reads one version of the file, fetched in blocks through a :class:`hoard.Reader`;
    ``wb``, ``xb``, ``ab``: buffers ``block_size`` bytes at a time into a :class:`hoard.Writer`,
    which publishes the file at ``close`` (at ``commit`` in a transaction).
    """

    def __init__(self, fs: HoardFileSystem, path: str, mode: str = "rb", **kwargs: Any) -> None:
        if mode == "rb":
            self._reader = fs._reader(path)
            # The reader knows the size and the rest: no second stat.
            kwargs["size"] = self._reader.size
            self._details = _file(self._reader.info)
        elif mode in ("wb", "xb", "ab"):
            # The writer opens now, not at the first upload, so that `xb` on an existing file
            # (or a write onto a directory) fails at `open`, as a local file does.
            self._writer = fs.client.create(path, exclusive=mode == "xb", append=mode == "ab")
        super().__init__(fs, path, mode, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self._reader.read(start, end - start)

    def _upload_chunk(self, final: bool = False) -> bool:
        with self.buffer.getbuffer() as data:
            self._writer.write(data)
        if final and self.autocommit:
            self.commit()
        return True

    def commit(self) -> None:
        """Publish the file (a no-op once it was discarded)."""
        if not self._writer.closed:
            self._writer.close()

    def discard(self) -> None:
        """Abandon the file: nothing of it appears."""
        if not self._writer.closed:
            self._writer.abort()

    def abort(self) -> None:
        """Abandon the file (written ones): nothing of it appears."""
        if self.writable() and not self.closed:
            self.closed = True
            self.discard()

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is not None and self.writable():
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # A written file dropped without `close` is abandoned, not published half written
        # (fsspec's default would close it).
        mode = getattr(self, "mode", None)  # None: `__init__` failed
        if mode in ("wb", "xb", "ab"):
            _abandon(self)
        elif mode is not None and not self.closed:
            self.close()


def _is_mount(path: str) -> bool:
    """Whether ``path`` (stripped) is a mount's root, ``/m``."""
    return path.count("/") == 1 and path != "/"


def _mount(path: str) -> str:
    return path.split("/", 2)[1]


def _parents(path: str) -> Iterator[str]:
    """``/m/a/b`` -> ``/m/a``, ``/m``."""
    while path.count("/") > 1:
        path = path.rsplit("/", 1)[0]
        yield path


def _slice(start: Optional[int], end: Optional[int], size: int) -> Tuple[int, int]:
    """``[start:end]`` of ``size`` bytes, as offsets."""
    first, last, _ = slice(start, end).indices(size)
    return first, last


def _file(info: FileInfo) -> Info:
    out: Info = {
        "name": info.path,
        "size": info.size,
        "type": "file",
        "mtime": info.mtime,
        "version": info.version,
    }
    if info.metadata is not None:
        out["metadata"] = dict(info.metadata)
    return out


def _directory(path: str) -> Info:
    return {"name": path, "size": 0, "type": "directory"}


def _entry(info: FileInfo) -> Info:
    if info.kind == "directory":
        return _directory(info.path.rstrip("/"))
    return _file(info)
