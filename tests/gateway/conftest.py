"""A real cluster for the S3 gateway's tests: Garage, and two ``hoard worker`` processes that
each serve the gateway (``hoard-test-cluster --gateway``, built by ``scripts/test.sh``). Clients
are the real ones users have: boto3, the AWS CLI, s3torchconnector, and raw HTTP for requests no
SDK would send.

Buckets (hoard mounts): ``local`` (a directory, written through), ``remote`` (a prefix of
Garage's bucket, written through), ``back`` (a directory, written back), ``public`` (a directory
readable without a signature); ``s3`` is the Python package tests' mount.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List

import boto3
import pytest
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]


def _target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


@dataclass
class Cluster:
    values: Dict[str, str]
    process: subprocess.Popen

    @property
    def gateways(self) -> List[str]:
        keys = sorted(k for k in self.values if k.startswith("gateway_") and k[8:].isdigit())
        return [f"http://{self.values[k]}" for k in keys]

    @property
    def access_key(self) -> str:
        return self.values["gateway_access_key"]

    @property
    def secret_key(self) -> str:
        return self.values["gateway_secret_key"]

    def dir(self, bucket: str) -> Path:
        return Path(self.values[f"{bucket}_dir"])

    def client(self, endpoint: str | None = None, **kwargs: object):
        """A boto3 S3 client of the gateway (the first worker's by default)."""
        config = Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            **kwargs.pop("config", {}),  # type: ignore[arg-type]
        )
        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.gateways[0],
            region_name="us-east-1",
            aws_access_key_id=kwargs.pop("access_key", self.access_key),
            aws_secret_access_key=kwargs.pop("secret_key", self.secret_key),
            config=config,
        )

    def direct(self):
        """A boto3 client of Garage itself (what the ``remote`` bucket writes through to)."""
        return boto3.client(
            "s3",
            endpoint_url=self.values["s3_endpoint"],
            region_name=self.values["s3_region"],
            aws_access_key_id=self.values["s3_access_key"],
            aws_secret_access_key=self.values["s3_secret_key"],
            config=Config(s3={"addressing_style": "path"}),
        )

    def garage_key(self, key: str) -> str:
        """The Garage key that the ``remote`` bucket's ``key`` is stored at."""
        return f"{self.values['remote_prefix']}/{key}"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    binary = Path(os.environ.get("HOARD_TEST_CLUSTER_BIN", _target_dir() / "debug" / "hoard-test-cluster"))
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: `cargo build -p hoard-tests --bin hoard-test-cluster` (scripts/test.sh does)")
    process = subprocess.Popen(
        [str(binary), "--workers", "2", "--memory", "64MiB", "--gateway"],
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
    yield Cluster(values, process)
    assert process.stdin is not None
    process.stdin.close()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def s3(cluster: Cluster):
    return cluster.client()


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix per test, so tests share buckets without seeing each other's keys."""
    return f"t-{uuid.uuid4().hex[:12]}/"


def error_code(excinfo: pytest.ExceptionInfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def status(excinfo: pytest.ExceptionInfo) -> int:
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]
