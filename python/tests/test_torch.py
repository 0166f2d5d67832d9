"""hoard.torch against a real cluster: datasets (with DataLoader workers, forked and spawned),
sharding, whole checkpoints and torch.distributed.checkpoint (one process, and two in a gloo
group)."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import operator
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterable, List, Set, Tuple

import numpy as np
import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.utils.data import DataLoader

import hoard
from hoard.torch import (
    HoardCheckpoint,
    HoardIterableDataset,
    HoardMapDataset,
    HoardObject,
    HoardStorageReader,
    HoardStorageWriter,
)

from harness import Cluster


def sample_bytes(index: int) -> bytes:
    """Sample ``index``'s content: 64 to 256 bytes derived from the index."""
    seed = hashlib.sha256(b"sample-%d" % index).digest()
    size = 64 + index % 193
    return (seed * (size // len(seed) + 1))[:size]


def sample_path(prefix: str, index: int) -> str:
    # Nested, zero-padded names: sorted paths are in index order.
    return f"{prefix}/{index // 1000:02d}/{index:05d}.bin"


def index_of(path: str) -> int:
    return int(path.rsplit("/", 1)[1].split(".")[0])


def file_names(client: hoard.Client, directory: str) -> Set[str]:
    """The names of the files in ``directory`` (not its S3 marker ``directory/``)."""
    return {
        info.path[len(directory) + 1 :]
        for info in client.list(directory, recursive=True)
        if info.kind == "file" and not info.path.endswith("/")
    }


def upload(client: hoard.Client, prefix: str, count: int) -> float:
    """Write samples ``0..count`` under ``prefix`` from a thread pool; the seconds it took."""
    start = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: client.put(sample_path(prefix, i), sample_bytes(i)), range(count)))
    return time.monotonic() - start


def index_and_bytes(obj: HoardObject) -> Tuple[int, bytes]:
    return index_of(obj.path), obj.read()


def checked_index(obj: HoardObject) -> int:
    """The sample's index, after checking its bytes (so that a worker sends back only ints)."""
    index = index_of(obj.path)
    data = obj.read()
    if data != sample_bytes(index):
        raise AssertionError(f"{obj.path}: wrong bytes")
    return index


def pid_index_and_bytes(obj: HoardObject) -> Tuple[int, int, bytes]:
    return os.getpid(), index_of(obj.path), obj.read_all()


# Datasets


def test_map_dataset_reads_every_sample(client: hoard.Client, tmp_hoard: str) -> None:
    # Directories are not samples, nor are their markers (S3 lists `dir/` in its own listing).
    client.mkdir(tmp_hoard)
    client.mkdir(f"{tmp_hoard}/00/empty-dir")
    upload(client, tmp_hoard, 300)
    dataset = HoardMapDataset.from_prefix(tmp_hoard + "/", client=client)
    assert len(dataset) == 300
    assert dataset.paths == [sample_path(tmp_hoard, i) for i in range(300)]
    for i in range(300):
        obj = dataset[i]
        assert isinstance(obj, HoardObject)
        assert obj.path == sample_path(tmp_hoard, i)
        assert obj.size == len(sample_bytes(i))
        assert obj.read() == sample_bytes(i)

    transformed = HoardMapDataset.from_prefix(tmp_hoard, client=client, transform=index_and_bytes)
    assert [transformed[i] for i in range(300)] == [(i, sample_bytes(i)) for i in range(300)]


def test_map_dataset_from_paths(cluster: Cluster, client: hoard.Client, tmp_hoard: str) -> None:
    upload(client, tmp_hoard, 20)
    order = [7, 3, 19, 0, 3]
    paths = [sample_path(tmp_hoard, i) for i in order]
    dataset = HoardMapDataset.from_paths(paths, cluster=cluster.config, transform=HoardObject.read_all)
    assert len(dataset) == 5
    assert [dataset[k] for k in range(5)] == [sample_bytes(i) for i in order]

    missing = HoardMapDataset.from_paths([f"{tmp_hoard}/missing.bin"], cluster=cluster.config)
    with pytest.raises(hoard.NotFound):
        missing[0].read()


def test_hoard_object_is_a_seekable_file(client: hoard.Client, tmp_hoard: str) -> None:
    data = bytes(range(256)) * 40
    client.put(f"{tmp_hoard}/blob", data)
    obj = HoardMapDataset.from_prefix(tmp_hoard, client=client)[0]
    assert obj.readable() and obj.seekable() and obj.name == f"{tmp_hoard}/blob"
    assert obj.read(10) == data[:10] and obj.tell() == 10
    assert obj.seek(-6, os.SEEK_END) == len(data) - 6
    assert obj.read() == data[-6:] and obj.read() == b"" and obj.read(5) == b""
    obj.seek(100)
    target = bytearray(50)
    assert obj.readinto(target) == 50 and bytes(target) == data[100:150] and obj.tell() == 150
    assert obj.seek(20, os.SEEK_CUR) == 170
    assert obj.read(4) == data[170:174]
    # The whole file, whatever the position, which stays.
    assert obj.read_all() == data and obj.tell() == 174
    assert np.frombuffer(obj.read_buffer(), dtype=np.uint8).tobytes() == data
    with pytest.raises(ValueError):
        obj.seek(-1)
    obj.close()
    with pytest.raises(ValueError):
        obj.read()

    # A HoardObject is what torch.load reads.
    buffer = io.BytesIO()
    torch.save({"t": torch.arange(1000)}, buffer)
    client.put(f"{tmp_hoard}/t.pt", buffer.getvalue())
    obj = HoardObject(client, f"{tmp_hoard}/t.pt")
    assert torch.equal(torch.load(obj)["t"], torch.arange(1000))


def test_iterable_dataset_reads_every_sample(client: hoard.Client, tmp_hoard: str) -> None:
    upload(client, tmp_hoard, 300)
    dataset = HoardIterableDataset.from_prefix(tmp_hoard, client=client, transform=index_and_bytes)
    assert list(dataset) == [(i, sample_bytes(i)) for i in range(300)]

    order = [5, 1, 2]
    paths = [sample_path(tmp_hoard, i) for i in order]
    by_paths = HoardIterableDataset.from_paths(paths, client=client)
    assert [obj.read_all() for obj in by_paths] == [sample_bytes(i) for i in order]


@pytest.mark.filterwarnings("ignore:This DataLoader will create 4 worker processes")
def test_dataloader_10k_samples(client: hoard.Client, tmp_hoard: str) -> None:
    count = 10_000
    seconds = upload(client, tmp_hoard, count)
    print(f"\nuploaded {count} samples in {seconds:.1f} s")

    start = time.monotonic()
    iterable = HoardIterableDataset.from_prefix(tmp_hoard, client=client, transform=checked_index)
    assert len(iterable.paths) == count
    loader = DataLoader(iterable, batch_size=64, num_workers=4, timeout=120)
    seen = collections.Counter(i for batch in loader for i in batch.tolist())
    assert sorted(seen) == list(range(count)) and set(seen.values()) == {1}
    print(f"iterable dataset, 4 workers: {time.monotonic() - start:.1f} s")

    start = time.monotonic()
    mapped = HoardMapDataset.from_prefix(tmp_hoard, client=client, transform=index_and_bytes)
    loader = DataLoader(mapped, batch_size=64, num_workers=4, timeout=120)
    indices: List[int] = []
    for batch_indices, batch_bytes in loader:
        for i, data in zip(batch_indices.tolist(), batch_bytes):
            assert data == sample_bytes(i)
        indices.extend(batch_indices.tolist())
    # The default (sequential) sampler, in order.
    assert indices == list(range(count))
    print(f"map dataset, 4 workers: {time.monotonic() - start:.1f} s")


# Fork safety


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")
def test_dataloader_forked_workers_use_the_parents_client(cluster: Cluster, tmp_hoard: str) -> None:
    parent = cluster.client()
    upload(parent, tmp_hoard, 64)
    # Used in the parent (connections open, runtime threads running) before the fork.
    assert parent.read(sample_path(tmp_hoard, 0)) == sample_bytes(0)
    dataset = HoardMapDataset.from_prefix(tmp_hoard, client=parent, transform=pid_index_and_bytes)
    # A worker that hangs on the inherited client fails the test through the timeout.
    loader = DataLoader(
        dataset, batch_size=None, num_workers=3, multiprocessing_context="fork", timeout=60
    )
    results = list(loader)
    assert [(i, data) for _, i, data in results] == [(i, sample_bytes(i)) for i in range(64)]
    pids = {pid for pid, _, _ in results}
    assert len(pids) == 3 and os.getpid() not in pids
    # And the parent's client still works after its children used it.
    assert parent.read(sample_path(tmp_hoard, 63)) == sample_bytes(63)


def test_os_fork_child_uses_the_parents_client(cluster: Cluster, tmp_hoard: str) -> None:
    parent = cluster.client()
    upload(parent, tmp_hoard, 2)
    assert parent.read(sample_path(tmp_hoard, 0)) == sample_bytes(0)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            ok = parent.read(sample_path(tmp_hoard, 1)) == sample_bytes(1)
            parent.put(f"{tmp_hoard}/from-child", b"child")
            code = 0 if ok else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
    assert parent.read(f"{tmp_hoard}/from-child") == b"child"


@pytest.mark.parametrize("mount", ["local"])
def test_dataloader_spawned_workers_unpickle_the_dataset(cluster: Cluster, tmp_hoard: str) -> None:
    client = cluster.client()
    upload(client, tmp_hoard, 40)
    # Built from a client (which does not pickle): spawned workers build their own from its config.
    read_all = operator.methodcaller("read_all")  # picklable by reference, unlike a lambda
    dataset = HoardMapDataset.from_prefix(tmp_hoard, client=client, transform=read_all)
    loader = DataLoader(
        dataset, batch_size=None, num_workers=2, multiprocessing_context="spawn", timeout=60
    )
    assert list(loader) == [sample_bytes(i) for i in range(40)]


# Sharding and shuffling


def ranks_indices(paths: List[str], world_size: int, **kwargs: Any) -> List[List[int]]:
    """Each rank's indices, as it would yield them."""
    return [
        HoardIterableDataset.from_paths(paths, rank=rank, world_size=world_size, **kwargs).indices()
        for rank in range(world_size)
    ]


def assert_partition(shards: Iterable[List[int]], count: int) -> None:
    flat = [i for shard in shards for i in shard]
    assert sorted(flat) == list(range(count)), "every sample exactly once"


@pytest.mark.parametrize("mount", ["local"])
def test_iterable_dataset_shards_across_ranks_and_workers(
    client: hoard.Client, tmp_hoard: str
) -> None:
    count = 103  # not a multiple of the shard count
    upload(client, tmp_hoard, count)
    paths = [sample_path(tmp_hoard, i) for i in range(count)]

    shards = ranks_indices(paths, 4)
    assert_partition(shards, count)
    assert all(len(shard) in (25, 26) for shard in shards)

    # Ranks times DataLoader workers, reading for real: every sample once, bytes checked.
    seen: List[int] = []
    for rank in range(4):
        dataset = HoardIterableDataset.from_prefix(
            tmp_hoard, client=client, transform=checked_index, rank=rank, world_size=4
        )
        seen.extend(DataLoader(dataset, batch_size=None, num_workers=2))
    assert sorted(seen) == list(range(count))

    unsharded = ranks_indices(paths, 4, enable_sharding=False)
    assert all(shard == list(range(count)) for shard in unsharded)

    with pytest.raises(ValueError):
        HoardIterableDataset.from_paths(paths, rank=4, world_size=4)


def test_iterable_dataset_shuffles_per_epoch() -> None:
    count = 500
    paths = [f"/local/unused/{i}" for i in range(count)]  # indices() reads nothing

    def epoch_order(epoch: int, seed: int = 0) -> List[int]:
        dataset = HoardIterableDataset.from_paths(
            paths, shuffle=True, seed=seed, rank=0, world_size=1
        )
        dataset.set_epoch(epoch)
        return dataset.indices()

    first = epoch_order(0)
    assert sorted(first) == list(range(count)) and first != list(range(count))
    assert epoch_order(0) == first, "the same seed and epoch give the same order"
    assert epoch_order(1) != first and sorted(epoch_order(1)) == list(range(count))
    assert epoch_order(0, seed=7) != first

    # Every rank shards the same permutation: together they cover it once, each in its order.
    for epoch in (0, 1):
        shards = []
        for rank in range(4):
            dataset = HoardIterableDataset.from_paths(paths, shuffle=True, rank=rank, world_size=4)
            dataset.set_epoch(epoch)
            shards.append(dataset.indices())
        assert_partition(shards, count)
        order = epoch_order(epoch)
        assert all(shard == order[rank::4] for rank, shard in enumerate(shards))


# Checkpoints


def small_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))


def small_model_and_optimizer() -> Tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = small_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):  # gives the optimizer its state (step, exp_avg, exp_avg_sq)
        optimizer.zero_grad()
        model(torch.randn(8, 16)).pow(2).sum().backward()
        optimizer.step()
    return model, optimizer


def assert_state_equal(actual: Any, expected: Any) -> None:
    """Nested dicts/lists of tensors and plain values, tensors compared with torch.equal."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor) and torch.equal(actual, expected)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys()
        for key in expected:
            assert_state_equal(actual[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_state_equal(a, e)
    else:
        assert actual == expected


def test_checkpoint_torch_save_and_load(cluster: Cluster, tmp_hoard: str) -> None:
    model, optimizer = small_model_and_optimizer()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3}
    checkpoint = HoardCheckpoint(cluster.config)
    path = f"{tmp_hoard}/epoch-3.pt"
    with checkpoint.writer(path) as f:
        torch.save(state, f)

    with checkpoint.reader(path) as f:
        loaded = torch.load(f)
    assert_state_equal(loaded, state)
    assert len(loaded["optimizer"]["state"]) == 4  # two weights, two biases

    # Into fresh objects, which then compute the same.
    fresh_model = small_model()
    fresh_optimizer = torch.optim.Adam(fresh_model.parameters(), lr=0.01)
    fresh_model.load_state_dict(loaded["model"])
    fresh_optimizer.load_state_dict(loaded["optimizer"])
    x = torch.randn(5, 16)
    assert torch.equal(fresh_model(x), model(x))
    assert_state_equal(fresh_optimizer.state_dict(), optimizer.state_dict())


def test_checkpoint_writer_abandons_on_error(cluster: Cluster, tmp_hoard: str) -> None:
    checkpoint = HoardCheckpoint(cluster.config)
    path = f"{tmp_hoard}/ckpt.pt"
    with checkpoint.writer(path) as f:
        torch.save({"v": torch.ones(3)}, f)
    with pytest.raises(RuntimeError, match="interrupted"):
        with checkpoint.writer(path) as f:
            torch.save({"v": torch.zeros(100_000)}, f)
            raise RuntimeError("interrupted")
    # The earlier checkpoint is still the one there.
    with checkpoint.reader(path) as f:
        assert torch.equal(torch.load(f)["v"], torch.ones(3))


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_dcp_save_and_load_single_process(
    cluster: Cluster, client: hoard.Client, tmp_hoard: str
) -> None:
    model, optimizer = small_model_and_optimizer()
    state = {
        "model": model.state_dict(),
        "extra": {"table": torch.arange(1000, dtype=torch.float64).reshape(10, 100), "step": 42},
    }
    path = f"{tmp_hoard}/step-42"
    dcp.save(state, storage_writer=HoardStorageWriter(path, cluster=cluster.config, thread_count=2))
    assert file_names(client, path) == {".metadata", "__0_0.distcp", "__0_1.distcp"}

    target = {
        "model": {k: torch.zeros_like(v) for k, v in model.state_dict().items()},
        "extra": {"table": torch.zeros(10, 100, dtype=torch.float64), "step": 0},
    }
    dcp.load(target, storage_reader=HoardStorageReader(path, cluster=cluster.config))
    assert_state_equal(target, state)

    # DCP wraps each rank's error in a CheckpointException (a BaseException).
    with pytest.raises(CheckpointException) as refused:
        dcp.save(state, storage_writer=HoardStorageWriter(path, client=client, overwrite=False))
    error, _ = refused.value.failures[0]
    assert isinstance(error, RuntimeError) and "already exists" in str(error)


DCP_RANK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch, torch.distributed as dist, torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor
    from hoard.torch import HoardIterableDataset, HoardStorageReader, HoardStorageWriter

    rank, world_size, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    config, path = sys.argv[4], sys.argv[5]
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    mesh = init_device_mesh("cpu", (world_size,))
    weight = torch.arange(64 * 8, dtype=torch.float32).reshape(64, 8)
    bias = torch.linspace(0, 1, 16)
    state = {"weight": distribute_tensor(weight, mesh, [Shard(0)]), "bias": bias.clone(), "step": 7}
    dcp.save(state, storage_writer=HoardStorageWriter(path, cluster=config))

    # Loaded back sharded the other way: DCP reads each rank's columns from both files.
    target = {
        "weight": distribute_tensor(torch.zeros(64, 8), mesh, [Shard(1)]),
        "bias": torch.zeros(16),
        "step": 0,
    }
    dcp.load(target, storage_reader=HoardStorageReader(path, cluster=config))
    ok = (
        torch.equal(target["weight"].full_tensor(), weight)
        and torch.equal(target["weight"].to_local(), weight[:, rank * 4 : rank * 4 + 4])
        and torch.equal(target["bias"], bias)
        and target["step"] == 7
    )
    # The iterable dataset takes its rank and world size from the initialized group.
    dataset = HoardIterableDataset.from_paths([f"/local/unused/{i}" for i in range(10)], cluster=config)
    report = {"rank": dataset.rank, "world_size": dataset.world_size, "indices": dataset.indices()}
    print(json.dumps({"ok": ok, **report}))
    dist.destroy_process_group()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_dcp_sharded_state_two_ranks(
    cluster: Cluster, client: hoard.Client, tmp_hoard: str, tmp_path: Path
) -> None:
    script = tmp_path / "rank.py"
    script.write_text(DCP_RANK_SCRIPT)
    path = f"{tmp_hoard}/sharded"
    port = free_port()
    ranks = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), "2", str(port), cluster.config, path],
            stdout=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    reports: List[Dict[str, Any]] = []
    try:
        for process in ranks:
            out, _ = process.communicate(timeout=120)
            assert process.returncode == 0
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for process in ranks:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [r["ok"] for r in reports] == [True, True]
    assert [(r["rank"], r["world_size"]) for r in reports] == [(0, 2), (1, 2)]
    assert [r["indices"] for r in reports] == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]

    # Each rank wrote its own rows; one process (no group) loads them into whole tensors.
    assert file_names(client, path) == {".metadata", "__0_0.distcp", "__1_0.distcp"}
    target = {"weight": torch.zeros(64, 8), "bias": torch.zeros(16), "step": 0}
    dcp.load(target, storage_reader=HoardStorageReader(path, client=client))
    assert torch.equal(target["weight"], torch.arange(64 * 8, dtype=torch.float32).reshape(64, 8))
    assert torch.equal(target["bias"], torch.linspace(0, 1, 16))
    assert target["step"] == 7
