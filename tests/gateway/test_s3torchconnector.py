"""s3torchconnector (Amazon's PyTorch connector for S3, on the AWS CRT) reading a dataset and
writing a checkpoint through the gateway, with only its endpoint changed."""

from __future__ import annotations

import io
import os

import pytest

torch = pytest.importorskip("torch")
s3tc = pytest.importorskip("s3torchconnector")


@pytest.fixture
def credentials(cluster, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", cluster.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", cluster.secret_key)


def test_a_map_dataset_reads_every_sample(cluster, s3, prefix, credentials):
    samples = {f"{prefix}train/{i:04}.bin": os.urandom(1000 + i) for i in range(200)}
    for key, data in samples.items():
        s3.put_object(Bucket="remote", Key=key, Body=data)
    config = s3tc.S3ClientConfig(force_path_style=True)
    dataset = s3tc.S3MapDataset.from_prefix(
        f"s3://remote/{prefix}train/",
        region="us-east-1",
        endpoint=cluster.gateways[0],
        s3client_config=config,
        transform=lambda obj: (obj.key, obj.read()),
    )
    assert len(dataset) == len(samples)
    seen = dict(dataset[i] for i in range(len(dataset)))
    assert seen == samples
    iterable = s3tc.S3IterableDataset.from_prefix(
        f"s3://remote/{prefix}train/", region="us-east-1", endpoint=cluster.gateways[1], s3client_config=config
    )
    assert {obj.key: obj.read() for obj in iterable} == samples


def test_a_checkpoint_saved_and_loaded(cluster, prefix, credentials):
    checkpoint = s3tc.S3Checkpoint(
        region="us-east-1", endpoint=cluster.gateways[0], s3client_config=s3tc.S3ClientConfig(force_path_style=True)
    )
    state = {"weights": torch.randn(512, 1024), "step": 7}
    uri = f"s3://back/{prefix}ckpt.pt"
    with checkpoint.writer(uri) as writer:
        torch.save(state, writer)
    with checkpoint.reader(uri) as reader:
        loaded = torch.load(io.BytesIO(reader.read()))
    assert loaded["step"] == 7 and torch.equal(loaded["weights"], state["weights"])
