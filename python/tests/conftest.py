"""A real cluster for the Python tests: Garage (S3) and hoard workers, started by the
``hoard-test-cluster`` binary of the ``hoard-tests`` crate (built by ``scripts/test.sh``).

Mounts: ``/local`` (a local directory) and ``/s3`` (a prefix of Garage's bucket), written
through. The cluster lives for the whole pytest session; tests keep to their own directories.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator

import pytest

import hoard

REPO = Path(__file__).resolve().parents[2]


def _target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


@dataclass
class Cluster:
    """A running test cluster."""

    config: str
    local_dir: Path
    s3: Dict[str, str]
    process: subprocess.Popen

    def client(self, **kwargs: object) -> hoard.Client:
        return hoard.Client(self.config, **kwargs)


def start_cluster(workers: int = 2, memory: str = "256MiB") -> Cluster:
    """Start a cluster; the caller stops it with :func:`stop_cluster`."""
    binary = Path(os.environ.get("HOARD_TEST_CLUSTER_BIN", _target_dir() / "debug" / "hoard-test-cluster"))
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: run `cargo build -p hoard-tests --bin hoard-test-cluster` (scripts/test.sh does)")
    process = subprocess.Popen(
        [str(binary), "--workers", str(workers), "--memory", memory],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    values: Dict[str, str] = {}
    for line in process.stdout:
        line = line.strip()
        if line == "ready":
            break
        key, _, value = line.partition("=")
        values[key] = value
    else:
        process.wait(timeout=30)
        raise RuntimeError(f"hoard-test-cluster exited with {process.returncode} before it was ready")
    s3 = {k[3:]: v for k, v in values.items() if k.startswith("s3_")}
    return Cluster(values["config"], Path(values["local_dir"]), s3, process)


def stop_cluster(cluster: Cluster) -> None:
    assert cluster.process.stdin is not None
    cluster.process.stdin.close()
    try:
        cluster.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        cluster.process.kill()
        cluster.process.wait()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    c = start_cluster()
    try:
        yield c
    finally:
        stop_cluster(c)


@pytest.fixture(scope="session")
def client(cluster: Cluster) -> hoard.Client:
    return cluster.client()


@pytest.fixture(params=["local", "s3"])
def mount(request: pytest.FixtureRequest) -> str:
    """Each mount in turn."""
    return str(request.param)


@pytest.fixture
def tmp_hoard(mount: str) -> str:
    """A fresh directory ``/MOUNT/test-XXXX`` (nothing there yet) on each mount in turn."""
    return f"/{mount}/test-{uuid.uuid4().hex[:12]}"
