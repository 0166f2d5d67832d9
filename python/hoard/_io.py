"""File objects over hoard readers and writers, for code that wants ``io`` files
(``torch.save``/``torch.load``, ``pickle``, ``tarfile``, pandas...)."""

from __future__ import annotations

import io
import os
from typing import Any, Optional, Union

from hoard._hoard import Client, Reader, Writer


class ReadFile(io.RawIOBase):
    """A seekable, read-only raw file over one version of a hoard file."""

    def __init__(self, reader: Reader) -> None:
        super().__init__()
        self._reader = reader
        self._pos = 0

    @property
    def name(self) -> str:
        return self._reader.path

    @property
    def size(self) -> int:
        return self._reader.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._checkClosed()
        n = self._reader.read_into(buffer, self._pos)
        self._pos += n
        return n

    def readall(self) -> bytes:
        self._checkClosed()
        data = self._reader.read(self._pos)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._checkClosed()
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self._reader.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def tell(self) -> int:
        self._checkClosed()
        return self._pos


class WriteFile(io.RawIOBase):
    """A write-only raw file streaming to hoard. The file appears when it is closed; leaving a
    ``with`` block with an exception abandons it instead."""

    def __init__(self, writer: Writer) -> None:
        super().__init__()
        self._writer = writer
        self._finishing = False

    @property
    def name(self) -> str:
        return self._writer.path

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: Any) -> int:
        self._checkClosed()
        return self._writer.write(data)

    def tell(self) -> int:
        """Bytes written through this file (in ``ab`` mode, not the offset in the file)."""
        self._checkClosed()
        return self._writer.written

    def flush(self) -> None:
        """Make what was written so far durable and visible (one round trip to the mount's
        coordinator). A buffered file's ``flush`` only hands its buffer to this one: call
        ``f.raw.flush()`` after it."""
        if not self.closed and not self._finishing:
            self._writer.flush()

    def close(self) -> None:
        """Publish the file."""
        if not self.closed:
            self._finishing = True
            try:
                self._writer.close()
            finally:
                super().close()

    def abort(self) -> None:
        """Abandon the file: nothing of it appears."""
        if not self.closed:
            self._finishing = True
            try:
                self._writer.abort()
            finally:
                super().close()

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # A file dropped without `close` is abandoned, not published half written.
        _abandon(self)


def _abandon(f: Any) -> None:
    """Abort a write file that was never closed (from ``__del__``: errors cannot propagate)."""
    try:
        if not f.closed:
            f.abort()
    except Exception:
        pass


class _BufferedWriter(io.BufferedWriter):
    """A buffered writer that publishes its file at ``close`` only: a ``with`` block that raises,
    or dropping the file unclosed, abandons it."""

    def abort(self) -> None:
        """Abandon the file: nothing of it appears."""
        raw = self.raw
        assert isinstance(raw, WriteFile)
        raw.abort()

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        _abandon(self)


class AbortingTextIO(io.TextIOWrapper):
    """A text file over a hoard write file that publishes it at ``close`` only: a ``with``
    block that raises, or dropping the file unclosed, abandons it (``io.TextIOWrapper`` would
    close, and so publish, the half-written file)."""

    def abort(self) -> None:
        """Abandon the file: nothing of it appears."""
        self.buffer.abort()

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is not None and self.writable():
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        if self.writable():
            _abandon(self)
        else:
            super().__del__()


def open(
    client: Client,
    path: str,
    mode: str = "rb",
    buffering: int = -1,
    encoding: Optional[str] = None,
    errors: Optional[str] = None,
    newline: Optional[str] = None,
    exclusive: bool = False,
) -> Union[io.BufferedReader, io.BufferedWriter, io.TextIOWrapper, ReadFile, WriteFile]:
    """Open a hoard file as a Python file object.

    ``mode``: ``r``/``rb`` (read), ``w``/``wb`` (write, replacing), ``x``/``xb`` (write, failing
    with :class:`hoard.AlreadyExists` if it exists), ``a``/``ab`` (append); ``t`` or no ``b``
    gives a text file. ``buffering=0`` gives the raw file (binary only).
    """
    kinds = set(mode) - {"b", "t"}
    if len(kinds) != 1 or not kinds <= {"r", "w", "x", "a"} or ("b" in mode and "t" in mode):
        raise ValueError(f"invalid mode {mode!r}: expected r, w, x or a, with b or t")
    kind = kinds.pop()
    binary = "b" in mode
    if buffering == 0 and not binary:
        raise ValueError("can't have unbuffered text I/O")
    size = io.DEFAULT_BUFFER_SIZE * 128 if buffering in (-1, 1) else buffering
    if kind == "r":
        raw: Union[ReadFile, WriteFile] = ReadFile(client.open(path))
        if buffering == 0:
            return raw
        buffered: Union[io.BufferedReader, io.BufferedWriter] = io.BufferedReader(raw, size)
        if binary:
            return buffered
        return io.TextIOWrapper(buffered, encoding=encoding or "utf-8", errors=errors, newline=newline)
    writer = client.create(path, exclusive=exclusive or kind == "x", append=kind == "a")
    try:
        raw = WriteFile(writer)
        if buffering == 0:
            return raw
        buffered = _BufferedWriter(raw, size)
        if binary:
            return buffered
        return AbortingTextIO(buffered, encoding=encoding or "utf-8", errors=errors, newline=newline)
    except BaseException:
        writer.abort()
        raise
