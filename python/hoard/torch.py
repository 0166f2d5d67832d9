"""PyTorch datasets and checkpoints over hoard (the API follows ``s3torchconnector``).

Datasets: every sample is one file, handed to ``transform`` as a lazy, seekable
:class:`HoardObject`; the transform reads what it needs::

    import torch
    from hoard.torch import HoardIterableDataset, HoardMapDataset

    def decode(obj):
        return torch.frombuffer(bytearray(obj.read()), dtype=torch.uint8)

    train = HoardMapDataset.from_prefix("/s3/train", transform=decode)
    loader = torch.utils.data.DataLoader(train, batch_size=None, shuffle=True, num_workers=4)

    stream = HoardIterableDataset.from_prefix("/s3/train", transform=decode, shuffle=True)
    for epoch in range(10):
        stream.set_epoch(epoch)
        for sample in torch.utils.data.DataLoader(stream, batch_size=None, num_workers=4):
            ...

The iterable dataset shards its files between the ranks of ``torch.distributed`` (when it is
initialized at construction, or given ``rank=``/``world_size=``) and the ``DataLoader``'s
workers: every file is read exactly once per epoch across all of them.

Checkpoints, whole (``torch.save``/``torch.load``)::

    from hoard.torch import HoardCheckpoint

    checkpoint = HoardCheckpoint()
    with checkpoint.writer("/s3/ckpt/epoch-3.pt") as f:       # appears when closed
        torch.save(model.state_dict(), f)
    with checkpoint.reader("/s3/ckpt/epoch-3.pt") as f:
        model.load_state_dict(torch.load(f))

and distributed (``torch.distributed.checkpoint``, one file per rank)::

    import torch.distributed.checkpoint as dcp
    from hoard.torch import HoardStorageReader, HoardStorageWriter

    dcp.save(state_dict, storage_writer=HoardStorageWriter("/s3/ckpt/step-1000"))
    dcp.load(state_dict, storage_reader=HoardStorageReader("/s3/ckpt/step-1000"))

Each of these takes ``cluster=`` (the cluster config file; default ``HOARD_CLUSTER``, then
``~/.hoard/cluster.toml``) and ``transport=``, or an existing ``client=``. They pickle (for a
``DataLoader`` with the ``spawn`` context, or DCP's process-based async save) as that config and
transport, and build a client in the process that unpickles them; a forked ``DataLoader``
worker keeps using the parent's client, which opens its own connections in the child.
"""

from __future__ import annotations

import io
import os
import posixpath
from contextlib import contextmanager
from typing import (
    Any,
    Callable,
    Dict,
    Generator,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
    cast,
)

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.filesystem import (
    FileSystemBase,
    FileSystemReader,
    FileSystemWriter,
)
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from hoard._hoard import Buffer, Client, Reader
from hoard._io import open as hoard_open

__all__ = [
    "HoardCheckpoint",
    "HoardIterableDataset",
    "HoardMapDataset",
    "HoardObject",
    "HoardStorageReader",
    "HoardStorageWriter",
]

PathLike = Union[str, "os.PathLike[str]"]


class _ClientSource:
    """How an object reaches the cluster: the config file and transport it was given (or an
    existing client), and the client it uses in this process.

    A native client cannot be pickled, so pickling keeps only the config and transport, and the
    process that unpickles builds its own client on first use (with ``client=``, that client's
    config and transport). A fork keeps the client
    object itself: the native client notices the new process id and opens its own connections.
    """

    def __init__(
        self,
        cluster: Optional[PathLike] = None,
        transport: Optional[str] = None,
        client: Optional[Client] = None,
    ) -> None:
        if client is not None and cluster is not None:
            raise ValueError("give cluster= or client=, not both")
        if client is not None:
            cluster = client.cluster
            transport = transport or client.transport
        self._client = client
        self.cluster: Optional[str] = os.fspath(cluster) if cluster is not None else None
        self.transport = transport

    def get(self) -> Client:
        """The client of this process, built on first use."""
        if self._client is None:
            self._client = Client(self.cluster, transport=self.transport)
            # Pin the config that HOARD_CLUSTER or ~/.hoard resolved to, for the processes that
            # unpickle this later.
            self.cluster = os.fspath(self._client.cluster)
        return self._client

    def __getstate__(self) -> Dict[str, Any]:
        return {"cluster": self.cluster, "transport": self.transport, "_client": None}


def _list_files(client: Client, prefix: str) -> List[Tuple[str, int]]:
    """The files under the directory ``prefix`` (recursively), with their sizes, sorted by path."""
    entries = client.list(prefix.rstrip("/") + "/", recursive=True)
    # An S3 directory's listing holds its own marker (the empty object `dir/`), as a directory.
    files = (e for e in entries if e.kind == "file")
    return sorted((e.path, e.size) for e in files)


class HoardObject(io.BufferedIOBase):
    """One file of a dataset, read lazily: nothing is fetched until a read.

    A seekable, read-only binary file (``torch.load``, ``PIL.Image.open``, ``tarfile``... take
    it). The first partial read opens the file, and every later read sees that version;
    :meth:`read` of the whole file from the start, :meth:`read_all` and :meth:`read_buffer`
    take it in one call without opening it first.
    """

    def __init__(self, client: Client, path: str, size: Optional[int] = None) -> None:
        super().__init__()
        self._client = client
        self._path = path
        self._size = size
        self._reader: Optional[Reader] = None
        self._pos = 0

    def __repr__(self) -> str:
        return f"HoardObject({self._path!r})"

    @property
    def path(self) -> str:
        """``/MOUNT/key``."""
        return self._path

    @property
    def name(self) -> str:
        return self._path

    @property
    def size(self) -> int:
        """The size in bytes: the listing's, or the opened version's."""
        if self._size is None:
            self._size = self._open().size
        return self._size

    def _open(self) -> Reader:
        if self._reader is None:
            self._checkClosed()
            self._reader = self._client.open(self._path)
            self._size = self._reader.size
        return self._reader

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        """Up to ``size`` bytes from the position (all the rest when ``size`` is negative)."""
        self._checkClosed()
        if size is None or size < 0:
            if self._pos == 0 and self._reader is None:
                data = self._client.read(self._path)
            else:
                data = self._open().read(self._pos)
        else:
            data = self._open().read(self._pos, size)
        self._pos += len(data)
        return data

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readinto(self, buffer: Any) -> int:
        self._checkClosed()
        n = self._open().read_into(buffer, self._pos)
        self._pos += n
        return n

    def readinto1(self, buffer: Any) -> int:
        return self.readinto(buffer)

    def read_all(self) -> bytes:
        """The whole file, whatever the position (which does not move)."""
        self._checkClosed()
        if self._reader is None:
            return self._client.read(self._path)
        return self._reader.read()

    def read_buffer(self) -> Buffer:
        """The whole file without a copy into Python bytes: a read-only buffer-protocol object
        (``memoryview(b)``, ``numpy.frombuffer(b, ...)``). The position does not move."""
        self._checkClosed()
        if self._reader is None:
            return self._client.read_buffer(self._path)
        return self._reader.read_buffer()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._checkClosed()
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def close(self) -> None:
        self._reader = None
        super().close()


Transform = Callable[[HoardObject], Any]


def _identity(obj: HoardObject) -> HoardObject:
    return obj


class _HoardDataset:
    """What both datasets hold: the files (paths and, when listed, sizes), the client source
    and the transform."""

    def __init__(
        self,
        files: Sequence[Tuple[str, Optional[int]]],
        source: _ClientSource,
        transform: Optional[Transform],
    ) -> None:
        self._files = list(files)
        self._source = source
        self._transform: Transform = transform if transform is not None else _identity

    @property
    def client(self) -> Client:
        """The client of this process."""
        return self._source.get()

    @property
    def paths(self) -> List[str]:
        """The files, in dataset order."""
        return [path for path, _ in self._files]

    def _sample(self, index: int) -> Any:
        path, size = self._files[index]
        return self._transform(HoardObject(self._source.get(), path, size))


def _from_prefix(
    prefix: str, cluster: Optional[PathLike], transport: Optional[str], client: Optional[Client]
) -> Tuple[List[Tuple[str, Optional[int]]], _ClientSource]:
    source = _ClientSource(cluster, transport, client)
    files: List[Tuple[str, Optional[int]]] = list(_list_files(source.get(), prefix))
    return files, source


class HoardMapDataset(_HoardDataset, Dataset[Any]):
    """A map-style dataset: sample ``i`` is ``transform(HoardObject)`` of the ``i``-th file.

    Build it with :meth:`from_prefix` or :meth:`from_paths`. Shuffle and shard it with the
    ``DataLoader``'s sampler (``DistributedSampler`` across ranks).
    """

    @classmethod
    def from_prefix(
        cls,
        prefix: str,
        *,
        cluster: Optional[PathLike] = None,
        transport: Optional[str] = None,
        client: Optional[Client] = None,
        transform: Optional[Transform] = None,
    ) -> "HoardMapDataset":
        """Every file under the directory ``prefix`` (``/MOUNT/dir``, recursively), sorted by
        path. The listing is taken now; files added later are not seen."""
        files, source = _from_prefix(prefix, cluster, transport, client)
        return cls(files, source, transform)

    @classmethod
    def from_paths(
        cls,
        paths: Sequence[str],
        *,
        cluster: Optional[PathLike] = None,
        transport: Optional[str] = None,
        client: Optional[Client] = None,
        transform: Optional[Transform] = None,
    ) -> "HoardMapDataset":
        """The files ``paths``, in that order (nothing is checked until a sample is read)."""
        return cls([(p, None) for p in paths], _ClientSource(cluster, transport, client), transform)

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, index: int) -> Any:
        return self._sample(index)


class HoardIterableDataset(_HoardDataset, IterableDataset[Any]):
    """An iterable dataset: ``transform(HoardObject)`` of each file, in path order or shuffled.
    Build it with :meth:`from_prefix` or :meth:`from_paths`.

    With ``enable_sharding`` (the default), the files are split between the distributed ranks
    and, within a rank, the ``DataLoader``'s workers: each file is yielded once per epoch across
    all of them (shards differ by at most one file). The rank and world size are
    ``rank=``/``world_size=`` when given, else those of the ``torch.distributed`` group
    initialized when the dataset is built (0 and 1 without one).

    With ``shuffle``, every epoch has its own order, drawn from ``seed + epoch`` (as
    ``DistributedSampler`` does): the same on every rank, before sharding. Call
    :meth:`set_epoch` before iterating each epoch; workers that persist across epochs
    (``persistent_workers=True``) keep the epoch they were started with.
    """

    def __init__(
        self,
        files: Sequence[Tuple[str, Optional[int]]],
        source: _ClientSource,
        transform: Optional[Transform] = None,
        *,
        shuffle: bool = False,
        seed: int = 0,
        enable_sharding: bool = True,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ) -> None:
        _HoardDataset.__init__(self, files, source, transform)
        self.shuffle = shuffle
        self.seed = seed
        self.enable_sharding = enable_sharding
        # Resolved now, not in the workers: a worker started with `spawn` has no process group.
        if dist.is_available() and dist.is_initialized():
            rank = dist.get_rank() if rank is None else rank
            world_size = dist.get_world_size() if world_size is None else world_size
        rank = 0 if rank is None else rank
        world_size = 1 if world_size is None else world_size
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not within world_size {world_size}")
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    @classmethod
    def from_prefix(
        cls,
        prefix: str,
        *,
        cluster: Optional[PathLike] = None,
        transport: Optional[str] = None,
        client: Optional[Client] = None,
        transform: Optional[Transform] = None,
        shuffle: bool = False,
        seed: int = 0,
        enable_sharding: bool = True,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ) -> "HoardIterableDataset":
        """Every file under the directory ``prefix`` (``/MOUNT/dir``, recursively), sorted by
        path. The listing is taken now; every rank must see the same one."""
        files, source = _from_prefix(prefix, cluster, transport, client)
        return cls(
            files,
            source,
            transform,
            shuffle=shuffle,
            seed=seed,
            enable_sharding=enable_sharding,
            rank=rank,
            world_size=world_size,
        )

    @classmethod
    def from_paths(
        cls,
        paths: Sequence[str],
        *,
        cluster: Optional[PathLike] = None,
        transport: Optional[str] = None,
        client: Optional[Client] = None,
        transform: Optional[Transform] = None,
        shuffle: bool = False,
        seed: int = 0,
        enable_sharding: bool = True,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ) -> "HoardIterableDataset":
        """The files ``paths``, in that order before shuffling."""
        return cls(
            [(p, None) for p in paths],
            _ClientSource(cluster, transport, client),
            transform,
            shuffle=shuffle,
            seed=seed,
            enable_sharding=enable_sharding,
            rank=rank,
            world_size=world_size,
        )

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` (when shuffling) from the next iteration on."""
        self.epoch = epoch

    def indices(self) -> List[int]:
        """The indices (into :attr:`paths`) that iterating here yields, in order: this epoch's
        order, then this rank's and this worker's shard of it."""
        n = len(self._files)
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            order: List[int] = torch.randperm(n, generator=generator).tolist()
        else:
            order = list(range(n))
        if not self.enable_sharding:
            return order
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        # One flat round-robin over (rank, worker) pairs: disjoint shards that cover the order.
        shard = self.rank * workers + worker_id
        return order[shard :: self.world_size * workers]

    def __iter__(self) -> Iterator[Any]:
        for index in self.indices():
            yield self._sample(index)


class HoardCheckpoint:
    """Whole checkpoints as hoard files, for ``torch.save`` and ``torch.load``."""

    def __init__(
        self,
        cluster: Optional[PathLike] = None,
        *,
        transport: Optional[str] = None,
        client: Optional[Client] = None,
    ) -> None:
        self._source = _ClientSource(cluster, transport, client)

    def writer(self, path: str) -> io.BufferedWriter:
        """A buffered file writing ``path``: it replaces any file there when closed; leaving its
        ``with`` block with an exception abandons it (the old file stays)."""
        return cast(io.BufferedWriter, hoard_open(self._source.get(), path, "wb"))

    def reader(self, path: str) -> io.BufferedReader:
        """A buffered, seekable file reading the version of ``path`` there now."""
        return cast(io.BufferedReader, hoard_open(self._source.get(), path, "rb"))


def _checkpoint_path(path: PathLike) -> str:
    """``path`` as ``/MOUNT/dir`` without a trailing slash, or ``ValueError``."""
    text = os.fspath(path).rstrip("/")
    mount, _, key = text[1:].partition("/")
    if not text.startswith("/") or not mount or not key:
        raise ValueError(f"a checkpoint path is /MOUNT/dir, not {os.fspath(path)!r}")
    return text


class _HoardFileSystem(FileSystemBase):
    """DCP's file-system interface over hoard (paths are ``/MOUNT/key`` strings)."""

    def __init__(self, source: _ClientSource) -> None:
        self._source = source

    @contextmanager
    def create_stream(self, path: PathLike, mode: str) -> Generator[io.IOBase, None, None]:
        if mode not in ("rb", "wb"):
            raise ValueError(f"unsupported mode {mode!r}: DCP opens files with rb or wb")
        # A write file leaving this block with an exception is abandoned: no partial file
        # appears, so nothing needs deleting (the fsspec version has to).
        with hoard_open(self._source.get(), os.fspath(path), mode) as stream:
            yield cast(io.IOBase, stream)

    def concat_path(self, path: PathLike, suffix: str) -> str:
        return posixpath.join(os.fspath(path), suffix)

    def init_path(self, path: PathLike) -> str:
        return _checkpoint_path(path)

    def rename(self, path: PathLike, new_path: PathLike) -> None:
        self._source.get().rename(os.fspath(path), os.fspath(new_path))

    def mkdir(self, path: PathLike) -> None:
        # An existing directory is left as it is; several ranks may make the same one.
        self._source.get().mkdir(os.fspath(path))

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: PathLike) -> bool:
        # DCP asks this only to pick a storage class by itself from a bare checkpoint id, which
        # never picks these: the form is all there is to check without a client.
        try:
            _checkpoint_path(checkpoint_id)
        except (TypeError, ValueError):
            return False
        return True

    def exists(self, path: PathLike) -> bool:
        return self._source.get().exists(os.fspath(path))

    def rm_file(self, path: PathLike) -> None:
        self._source.get().delete(os.fspath(path))


class HoardStorageWriter(FileSystemWriter):
    """A ``torch.distributed.checkpoint`` storage writer into the hoard directory ``path``
    (``/MOUNT/dir``): one ``__RANK_N.distcp`` file per rank and thread, and ``.metadata``.

    ``thread_count``: files written at once per rank. ``overwrite=False`` refuses a directory
    that already holds a checkpoint.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        cluster: Optional[PathLike] = None,
        transport: Optional[str] = None,
        client: Optional[Client] = None,
        single_file_per_rank: bool = True,
        thread_count: int = 1,
        per_thread_copy_ahead: int = 10_000_000,
        cache_staged_state_dict: bool = False,
        overwrite: bool = True,
    ) -> None:
        super().__init__(
            path,
            single_file_per_rank=single_file_per_rank,
            # A hoard file is durable when its close returns; DCP's sync is an fsync on the
            # file descriptor, which these files do not have (it would only warn).
            sync_files=False,
            thread_count=thread_count,
            per_thread_copy_ahead=per_thread_copy_ahead,
            cache_staged_state_dict=cache_staged_state_dict,
            overwrite=overwrite,
        )
        self.fs = _HoardFileSystem(_ClientSource(cluster, transport, client))
        self.path = self.fs.init_path(path)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: PathLike) -> bool:
        return _HoardFileSystem.validate_checkpoint_id(checkpoint_id)


class HoardStorageReader(FileSystemReader):
    """A ``torch.distributed.checkpoint`` storage reader of a checkpoint that
    :class:`HoardStorageWriter` wrote into ``path``."""

    def __init__(
        self,
        path: PathLike,
        *,
        cluster: Optional[PathLike] = None,
        transport: Optional[str] = None,
        client: Optional[Client] = None,
    ) -> None:
        super().__init__(path)
        self.fs = _HoardFileSystem(_ClientSource(cluster, transport, client))
        self.path = self.fs.init_path(path)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: PathLike) -> bool:
        return _HoardFileSystem.validate_checkpoint_id(checkpoint_id)
