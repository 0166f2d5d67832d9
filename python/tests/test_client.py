"""Round trips of every call of ``hoard.Client`` against a real cluster (Garage + workers)."""

from __future__ import annotations

import array
import os
import threading
import time

import numpy as np
import pytest

import hoard


def pattern(seed: int, size: int) -> bytes:
    """Deterministic bytes, different for every seed."""
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def test_put_stat_read_round_trip(client: hoard.Client, tmp_hoard: str) -> None:
    data = pattern(1, 3 * 1024 * 1024 + 17)
    info = client.put(f"{tmp_hoard}/a.bin", data, metadata={"owner": "test"})
    assert info.path == f"{tmp_hoard}/a.bin"
    assert info.kind == "file" and info.size == len(data) and info.version
    stat = client.stat(f"{tmp_hoard}/a.bin")
    assert stat.size == len(data) and stat.version == info.version
    assert stat.metadata == {"owner": "test"}
    assert stat.mtime is not None and abs(stat.mtime - time.time()) < 600
    assert client.read(f"{tmp_hoard}/a.bin") == data
    assert client.read(f"{tmp_hoard}/a.bin", 1_000_000, 5000) == data[1_000_000:1_005_000]
    # Past the end: fewer bytes, then none.
    assert client.read(f"{tmp_hoard}/a.bin", len(data) - 3, 100) == data[-3:]
    assert client.read(f"{tmp_hoard}/a.bin", len(data) + 5) == b""
    assert client.exists(f"{tmp_hoard}/a.bin")
    assert not client.exists(f"{tmp_hoard}/missing")


def test_read_buffer_is_zero_copy_view(client: hoard.Client, tmp_hoard: str) -> None:
    data = pattern(2, 1 << 20)
    client.put(f"{tmp_hoard}/b.bin", data)
    buf = client.read_buffer(f"{tmp_hoard}/b.bin", 4096, 8192)
    assert len(buf) == 8192
    view = memoryview(buf)
    assert view.readonly and bytes(view) == data[4096 : 4096 + 8192]
    arr = np.frombuffer(buf, dtype=np.uint8)
    assert arr.tobytes() == data[4096 : 4096 + 8192]
    # Every export is of the same memory: the bytes are not copied per view.
    assert arr.__array_interface__["data"][0] == np.frombuffer(buf, dtype=np.uint8).__array_interface__["data"][0]
    with pytest.raises(ValueError, match="read-only"):
        arr[0] = 1


def test_read_into_caller_buffers(client: hoard.Client, tmp_hoard: str) -> None:
    data = pattern(3, 2 * 1024 * 1024 + 100)
    path = f"{tmp_hoard}/c.bin"
    client.put(path, data)
    target = bytearray(1 << 20)
    assert client.read_into(path, target, 5) == len(target)
    assert bytes(target) == data[5 : 5 + len(target)]
    # A float32 array is filled as raw bytes.
    floats = np.zeros(1000, dtype=np.float32)
    assert client.read_into(path, floats, 0) == 4000
    assert floats.tobytes() == data[:4000]
    # A memoryview slice: only its part is written.
    whole = bytearray(b"\xff" * 64)
    assert client.read_into(path, memoryview(whole)[16:32], 0) == 16
    assert whole[:16] == b"\xff" * 16 and whole[16:32] == data[:16] and whole[32:] == b"\xff" * 32
    # At the end of the file: the count says how much.
    tail = bytearray(1000)
    assert client.read_into(path, tail, len(data) - 10) == 10
    assert tail[:10] == data[-10:]
    with pytest.raises(TypeError):
        client.read_into(path, b"immutable", 0)
    with pytest.raises(TypeError):
        client.read_into(path, array.array("d", [1.0])[::1].tobytes(), 0)


def test_reader_pins_a_version(client: hoard.Client, tmp_hoard: str) -> None:
    path = f"{tmp_hoard}/v.bin"
    old = pattern(4, 100_000)
    client.put(path, old)
    reader = client.open(path)
    assert reader.size == len(old) and reader.path == path
    assert reader.read(10, 20) == old[10:30]
    buf = bytearray(50)
    assert reader.read_into(buf, 100) == 50 and bytes(buf) == old[100:150]
    client.put(path, pattern(5, 100_000))
    # The opened version's bytes while the cache still holds them, else `Changed`: never the
    # new file's bytes, nor a mix.
    try:
        assert reader.read(0, 100_000) == old
    except hoard.Changed:
        pass
    assert client.open(path).read(0, 100) == pattern(5, 100_000)[:100]


def test_streaming_writer(client: hoard.Client, tmp_hoard: str) -> None:
    path = f"{tmp_hoard}/w.bin"
    parts = [pattern(10 + i, 700_000) for i in range(5)]
    with client.create(path) as w:
        for p in parts:
            assert w.write(p) == len(p)
        assert not client.exists(path), "a file appears when closed"
    assert w.closed and w.written == sum(map(len, parts))
    assert client.read(path) == b"".join(parts)
    # Exclusive create of an existing file.
    with pytest.raises(hoard.AlreadyExists) as e:
        client.create(path, exclusive=True)
    assert isinstance(e.value, FileExistsError)
    # A block that raises abandons the file.
    with pytest.raises(RuntimeError):
        with client.create(f"{tmp_hoard}/aborted.bin") as w:
            w.write(b"partial")
            raise RuntimeError("boom")
    assert not client.exists(f"{tmp_hoard}/aborted.bin")
    with pytest.raises(hoard.HoardError, match="closed"):
        w.write(b"more")


def test_append(client: hoard.Client, tmp_hoard: str) -> None:
    path = f"{tmp_hoard}/log.txt"
    client.append(path, b"one\n")
    info = client.append(path, b"two\n")
    assert info.size == 8
    with client.create(path, append=True) as w:
        w.write(b"three\n")
    assert client.read(path) == b"one\ntwo\nthree\n"


def test_list_rename_delete_mkdir(client: hoard.Client, tmp_hoard: str) -> None:
    for name in ["x/1", "x/2", "x/sub/3", "y"]:
        client.put(f"{tmp_hoard}/{name}", name.encode())
    top = client.list(tmp_hoard)
    assert [(e.path, e.kind) for e in top] == [(f"{tmp_hoard}/x/", "directory"), (f"{tmp_hoard}/y", "file")]
    deep = client.list(tmp_hoard, recursive=True)
    assert [e.path for e in deep] == [f"{tmp_hoard}/{n}" for n in ["x/1", "x/2", "x/sub/3", "y"]]
    assert all(e.kind == "file" for e in deep) and deep[0].size == 3
    client.rename(f"{tmp_hoard}/x", f"{tmp_hoard}/z")
    assert client.read(f"{tmp_hoard}/z/sub/3") == b"x/sub/3"
    assert not client.exists(f"{tmp_hoard}/x/1")
    client.rename(f"{tmp_hoard}/y", f"{tmp_hoard}/y2")
    assert client.read(f"{tmp_hoard}/y2") == b"y"
    with pytest.raises(hoard.NotEmpty):
        client.delete(f"{tmp_hoard}/z")
    client.delete(f"{tmp_hoard}/z", recursive=True)
    client.delete(f"{tmp_hoard}/y2")
    assert client.list(tmp_hoard, recursive=True) == []
    client.mkdir(f"{tmp_hoard}/made/deep")
    assert [e.path for e in client.list(tmp_hoard)] == [f"{tmp_hoard}/made/"]


def test_errors_are_typed_and_carry_causes(client: hoard.Client, tmp_hoard: str) -> None:
    with pytest.raises(hoard.NotFound) as e:
        client.read(f"{tmp_hoard}/nothing")
    assert isinstance(e.value, FileNotFoundError) and "nothing" in str(e.value)
    with pytest.raises(FileNotFoundError):
        client.stat("/no-such-mount/x")
    with pytest.raises(hoard.InvalidPath):
        client.stat("relative/path")
    with pytest.raises(hoard.NotFound):
        client.delete(f"{tmp_hoard}/nothing")
    with pytest.raises(hoard.ConfigError, match="no-such-file"):
        hoard.Client("/no-such-file.toml")
    with pytest.raises(hoard.ConfigError, match="transport"):
        hoard.Client(client.cluster, transport="pigeon")


def test_load_preloads(client: hoard.Client, tmp_hoard: str) -> None:
    for i in range(3):
        client.put(f"{tmp_hoard}/l/{i}", pattern(20 + i, 300_000))
    summary = client.load(f"{tmp_hoard}/l")
    assert summary["files"] == 3 and summary["bytes"] == 900_000


def test_calls_release_the_gil(client: hoard.Client, tmp_hoard: str) -> None:
    """Reads on 4 threads at once all complete, and a pure-Python counter keeps running while
    they wait (it could not if the GIL were held across the network calls)."""
    data = pattern(30, 4 << 20)
    client.put(f"{tmp_hoard}/g.bin", data)
    stop = threading.Event()
    ticks = [0]

    def spin() -> None:
        while not stop.is_set():
            ticks[0] += 1

    results: list = []

    def reader() -> None:
        for _ in range(10):
            results.append(client.read(f"{tmp_hoard}/g.bin") == data)

    spinner = threading.Thread(target=spin)
    spinner.start()
    readers = [threading.Thread(target=reader) for _ in range(4)]
    before = ticks[0]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    spinner.join()
    assert results == [True] * 40
    assert ticks[0] > before


def test_client_works_after_fork(client: hoard.Client, tmp_hoard: str) -> None:
    data = pattern(40, 200_000)
    client.put(f"{tmp_hoard}/f.bin", data)
    assert client.read(f"{tmp_hoard}/f.bin") == data  # the parent's runtime and connections are up
    reader = client.open(f"{tmp_hoard}/f.bin")
    pid = os.fork()
    if pid == 0:  # the child: the inherited client and reader must work
        ok = False
        try:
            ok = client.read(f"{tmp_hoard}/f.bin") == data and reader.read(5, 10) == data[5:15]
            client.put(f"{tmp_hoard}/from-child", b"child")
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert client.read(f"{tmp_hoard}/from-child") == b"child"
    assert client.read(f"{tmp_hoard}/f.bin", 0, 10) == data[:10]  # the parent still works


def test_file_objects(client: hoard.Client, tmp_hoard: str) -> None:
    path = f"{tmp_hoard}/text.txt"
    with hoard.open(client, path, "w") as f:
        f.write("héllo\n" * 1000)
    with hoard.open(client, path, "r") as f:
        assert f.readline() == "héllo\n"
        assert len(f.read()) == 6 * 999
    with hoard.open(client, path, "rb") as f:
        f.seek(-7, os.SEEK_END)
        assert f.read() == "héllo\n".encode()[-7:]
        f.seek(2)
        assert f.tell() == 2
    with pytest.raises(hoard.AlreadyExists):
        hoard.open(client, path, "xb")
    with pytest.raises(ValueError):
        with hoard.open(client, f"{tmp_hoard}/never", "wb") as f:
            f.write(b"x" * 10)
            raise ValueError("abandon")
    assert not client.exists(f"{tmp_hoard}/never")


def test_reader_shared_by_threads_after_fork(client: hoard.Client, tmp_hoard: str) -> None:
    """A forked child's threads all re-open a reader inherited from the parent at once: none may
    hold a lock while another waits for the GIL (that deadlocked once)."""
    data = pattern(50, 300_000)
    client.put(f"{tmp_hoard}/r.bin", data)
    reader = client.open(f"{tmp_hoard}/r.bin")
    assert reader.read(0, 10) == data[:10]
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            results: list = []
            threads = [
                threading.Thread(target=lambda i=i: results.append(reader.read(i * 1000, 1000) == data[i * 1000 : i * 1000 + 1000]))
                for i in range(4)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            ok = results == [True] * 4
        finally:
            os._exit(0 if ok else 1)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.WEXITSTATUS(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the child's threads hung on the inherited reader")


def test_failed_or_dropped_writes_leave_the_old_file(client: hoard.Client, tmp_hoard: str) -> None:
    import gc

    path = f"{tmp_hoard}/precious"
    client.put(path, b"precious data")
    # A bad mode is refused before anything is opened.
    with pytest.raises(ValueError):
        hoard.open(client, path, "w", buffering=0)
    # A text file whose block raises is abandoned.
    with pytest.raises(RuntimeError):
        with hoard.open(client, path, "w") as f:
            f.write("half")
            raise RuntimeError("boom")
    # A file dropped without close is abandoned, not published.
    for mode in ("wb", "w"):
        f = hoard.open(client, path, mode)
        f.write(b"half" if mode == "wb" else "half")
        del f
        gc.collect()
    raw = hoard.open(client, path, "wb", buffering=0)
    raw.write(b"half")
    del raw
    gc.collect()
    assert client.read(path) == b"precious data"


def test_raw_flush_publishes_what_was_written(client: hoard.Client, tmp_hoard: str) -> None:
    path = f"{tmp_hoard}/log"
    with hoard.open(client, path, "ab") as f:
        f.write(b"line 1\n")
        f.flush()
        f.raw.flush()
        assert client.read(path) == b"line 1\n"
        f.write(b"line 2\n")
    assert client.read(path) == b"line 1\nline 2\n"


def test_exceptions_pickle(client: hoard.Client, tmp_hoard: str) -> None:
    import copy
    import pickle

    with pytest.raises(hoard.NotFound) as e:
        client.read(f"{tmp_hoard}/nothing")
    for error in (e.value, hoard.AlreadyExists("x"), hoard.NotEmpty("y"), hoard.Changed("z")):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error)
        assert str(copy.copy(error)) == str(error)
    assert e.value.errno == 2 and isinstance(e.value, FileNotFoundError)


def test_cluster_and_transport_properties(client: hoard.Client, cluster) -> None:  # type: ignore[no-untyped-def]
    assert client.cluster == cluster.config and isinstance(client.cluster, str)
    assert client.transport is None
    assert hoard.Client(cluster.config, transport="tcp").transport == "tcp"
    assert sorted(client.mounts) == ["local", "s3"]
