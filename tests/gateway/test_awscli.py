"""The AWS CLI against the gateway: the high-level `aws s3` commands users type, and every
operation of the gateway through `aws s3api`, errors included."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import Cluster


def aws(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID=cluster.access_key,
        AWS_SECRET_ACCESS_KEY=cluster.secret_key,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_MAX_ATTEMPTS="1",
    )
    result = subprocess.run(
        ["aws", "--endpoint-url", cluster.gateways[0], *args], env=env, capture_output=True, text=True, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def api(cluster: Cluster, *args: str) -> dict:
    out = aws(cluster, "s3api", *args, "--output", "json").stdout
    return json.loads(out) if out.strip() else {}


def test_high_level_commands(cluster, tmp_path: Path, prefix):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    files = {"a.txt": b"alpha", "sub/b.bin": os.urandom(20 * 1024 * 1024), "sub/c": b""}
    for name, data in files.items():
        (src / name).write_bytes(data)
    aws(cluster, "s3", "cp", "--recursive", str(src), f"s3://back/{prefix}")
    listing = aws(cluster, "s3", "ls", "--recursive", f"s3://back/{prefix}").stdout
    assert sorted(line.split()[-1] for line in listing.splitlines()) == sorted(f"{prefix}{n}" for n in files)
    # sync finds nothing to do the second time.
    aws(cluster, "s3", "sync", str(src), f"s3://back/{prefix}")
    again = aws(cluster, "s3", "sync", str(src), f"s3://back/{prefix}").stdout
    assert "upload:" not in again
    out = tmp_path / "out"
    aws(cluster, "s3", "cp", "--recursive", f"s3://back/{prefix}", str(out))
    for name, data in files.items():
        assert (out / name).read_bytes() == data
    aws(cluster, "s3", "mv", f"s3://back/{prefix}a.txt", f"s3://back/{prefix}moved.txt")
    assert aws(cluster, "s3", "cp", f"s3://back/{prefix}moved.txt", "-").stdout == "alpha"
    aws(cluster, "s3", "rm", "--recursive", f"s3://back/{prefix}")
    assert aws(cluster, "s3", "ls", "--recursive", f"s3://back/{prefix}", check=False).stdout == ""


def test_every_operation_through_s3api(cluster, tmp_path: Path, prefix):
    key = f"{prefix}obj"
    body = tmp_path / "body"
    body.write_bytes(b"s3api body")
    put = api(cluster, "put-object", "--bucket", "local", "--key", key, "--body", str(body), "--metadata", "x=1")
    assert put["ETag"] == f'"{hashlib.md5(b"s3api body").hexdigest()}"'
    head = api(cluster, "head-object", "--bucket", "local", "--key", key)
    assert head["ContentLength"] == 10 and head["Metadata"] == {"x": "1"}
    out = tmp_path / "out"
    api(cluster, "get-object", "--bucket", "local", "--key", key, "--range", "bytes=0-4", str(out))
    assert out.read_bytes() == b"s3api"
    api(cluster, "copy-object", "--bucket", "local", "--key", f"{key}2", "--copy-source", f"local/{key}")
    listed = api(cluster, "list-objects-v2", "--bucket", "local", "--prefix", prefix)
    assert [o["Key"] for o in listed["Contents"]] == [key, f"{key}2"]
    v1 = api(cluster, "list-objects", "--bucket", "local", "--prefix", prefix)
    assert len(v1["Contents"]) == 2
    deleted = api(
        cluster, "delete-objects", "--bucket", "local", "--delete", json.dumps({"Objects": [{"Key": f"{key}2"}]})
    )
    assert deleted["Deleted"] == [{"Key": f"{key}2"}]
    api(cluster, "delete-object", "--bucket", "local", "--key", key)
    # Multipart, every step.
    mp = f"{prefix}mp"
    uid = api(cluster, "create-multipart-upload", "--bucket", "local", "--key", mp)["UploadId"]
    part = tmp_path / "part"
    part.write_bytes(b"p" * (5 * 1024 * 1024))
    e1 = api(cluster, "upload-part", "--bucket", "local", "--key", mp, "--upload-id", uid, "--part-number", "1", "--body", str(part))["ETag"]
    api(cluster, "put-object", "--bucket", "local", "--key", f"{prefix}tail", "--body", str(body))
    e2 = api(
        cluster, "upload-part-copy", "--bucket", "local", "--key", mp, "--upload-id", uid, "--part-number", "2",
        "--copy-source", f"local/{prefix}tail",
    )["CopyPartResult"]["ETag"]
    parts = api(cluster, "list-parts", "--bucket", "local", "--key", mp, "--upload-id", uid)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1, 2]
    uploads = api(cluster, "list-multipart-uploads", "--bucket", "local", "--prefix", prefix)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [uid]
    layout = json.dumps({"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    api(cluster, "complete-multipart-upload", "--bucket", "local", "--key", mp, "--upload-id", uid, "--multipart-upload", layout)
    assert api(cluster, "head-object", "--bucket", "local", "--key", mp)["ContentLength"] == 5 * 1024 * 1024 + 10
    other = api(cluster, "create-multipart-upload", "--bucket", "local", "--key", f"{mp}2")["UploadId"]
    api(cluster, "abort-multipart-upload", "--bucket", "local", "--key", f"{mp}2", "--upload-id", other)
    # Buckets.
    names = [b["Name"] for b in api(cluster, "list-buckets")["Buckets"]]
    assert "local" in names
    api(cluster, "head-bucket", "--bucket", "local")
    assert api(cluster, "get-bucket-location", "--bucket", "local")["LocationConstraint"] is None


@pytest.mark.parametrize(
    "args,code",
    [
        (["get-object", "--bucket", "local", "--key", "no/such/key", "/dev/null"], "NoSuchKey"),
        (["list-objects-v2", "--bucket", "no-such-bucket"], "NoSuchBucket"),
        (["list-parts", "--bucket", "local", "--key", "k", "--upload-id", "0" * 32], "NoSuchUpload"),
    ],
)
def test_errors_carry_s3s_codes(cluster, args, code):
    result = aws(cluster, "s3api", *args, check=False)
    assert result.returncode != 0 and code in result.stderr, result.stderr
