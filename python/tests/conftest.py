"""Fixtures of the Python tests: one real cluster (Garage and hoard workers, see ``harness.py``)
for the whole pytest session, with mounts ``/local`` (a local directory) and ``/s3`` (a prefix of
Garage's bucket). Tests keep to their own directories (``tmp_hoard``).
"""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest

import hoard
from harness import Cluster, start_cluster, stop_cluster

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
