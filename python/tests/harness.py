"""Start and stop a real hoard cluster (Garage S3 + hoard workers) for Python tests and
benchmarks, through the ``hoard-test-cluster`` binary of the ``hoard-tests`` crate (built by
``scripts/test.sh``; ``HOARD_TEST_CLUSTER_BIN`` overrides where it is). The workers run
``target/debug/hoard`` unless ``HOARD_BIN`` names another binary (the benchmark uses the release
build).

Mounts: ``/local`` (a local directory, ``Cluster.local_dir``) and ``/s3`` (the prefix
``Cluster.s3["prefix"]`` of Garage's bucket ``Cluster.s3["bucket"]``), both written through.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

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


def start_cluster(workers: int = 2, memory: str = "256MiB", extra: str = "") -> Cluster:
    """Start a cluster of ``workers`` workers with ``memory`` of page memory each, and extra
    TOML for the cluster config (``[client]``/``[worker]`` tables); the caller stops it with
    :func:`stop_cluster`."""
    binary = Path(os.environ.get("HOARD_TEST_CLUSTER_BIN", _target_dir() / "debug" / "hoard-test-cluster"))
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: run `cargo build -p hoard-tests --bin hoard-test-cluster` (scripts/test.sh does)")
    process = subprocess.Popen(
        [str(binary), "--workers", str(workers), "--memory", memory, "--extra", extra],
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
