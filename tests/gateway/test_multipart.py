"""Multipart uploads through the gateway with boto3: parts staged in hoard, completed by
composing them (no bytes copied), listed, aborted, checked as S3 checks them; boto3's managed
transfers; parts sent to one worker's gateway and completed through the other's."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from conftest import error_code

MIB = 1024 * 1024


def s3_etag(parts: list[bytes]) -> str:
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


@pytest.mark.parametrize("bucket", ["local", "remote", "back"])
def test_upload_complete_read(cluster, s3, prefix, bucket):
    key = f"{prefix}big.bin"
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB + 3), os.urandom(1234)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/x-tar", Metadata={"k": "v"})
    uid = upload["UploadId"]
    done = []
    # Parts in any order, one of them twice (the second replaces the first), through both gateways.
    other = cluster.client(cluster.gateways[1])
    for n in [3, 1, 2]:
        client = other if n == 2 else s3
        if n == 1:
            client.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1, Body=b"replaced")
        out = client.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=parts[n - 1])
        assert out["ETag"] == f'"{hashlib.md5(parts[n - 1]).hexdigest()}"'
        done.append({"PartNumber": n, "ETag": out["ETag"]})
    done.sort(key=lambda p: p["PartNumber"])
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [(i + 1, len(p)) for i, p in enumerate(parts)]
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    assert [(u["Key"], u["UploadId"]) for u in uploads["Uploads"]] == [(key, uid)]
    out = other.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": done})
    assert out["ETag"] == s3_etag(parts)
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == b"".join(parts)
    assert got["ETag"] == s3_etag(parts)
    assert got["ContentType"] == "application/x-tar" and got["Metadata"] == {"k": "v"}
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)
    assert error_code(e) == "NoSuchUpload"
    if bucket == "remote":
        direct = cluster.direct()
        body = direct.get_object(Bucket=cluster.values["s3_bucket"], Key=cluster.garage_key(key))["Body"].read()
        assert body == b"".join(parts)
        staged = direct.list_objects_v2(Bucket=cluster.values["s3_bucket"], Prefix=f"{cluster.values['remote_prefix']}/.hoard")
        assert staged["KeyCount"] == 0, "staged parts never reach the S3 server"


def test_completions_are_checked_as_s3_checks_them(s3, prefix):
    key = f"{prefix}checked"
    uid = s3.create_multipart_upload(Bucket="local", Key=key)["UploadId"]
    small = s3.upload_part(Bucket="local", Key=key, UploadId=uid, PartNumber=1, Body=b"small")["ETag"]
    last = s3.upload_part(Bucket="local", Key=key, UploadId=uid, PartNumber=2, Body=b"last")["ETag"]

    def complete(parts):
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(Bucket="local", Key=key, UploadId=uid, MultipartUpload={"Parts": parts})
        return error_code(e)

    assert complete([{"PartNumber": 1, "ETag": small}, {"PartNumber": 2, "ETag": last}]) == "EntityTooSmall"
    assert complete([{"PartNumber": 2, "ETag": last}, {"PartNumber": 1, "ETag": small}]) == "InvalidPartOrder"
    assert complete([{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]) == "InvalidPart"
    assert complete([{"PartNumber": 7, "ETag": small}]) == "InvalidPart"
    # A single small part is a valid (last) part.
    out = s3.complete_multipart_upload(
        Bucket="local", Key=key, UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": last}]}
    )
    assert s3.get_object(Bucket="local", Key=key)["Body"].read() == b"last"
    assert out["ETag"] == s3_etag([b"last"])


def test_abort_and_unknown_uploads(s3, prefix):
    key = f"{prefix}aborted"
    uid = s3.create_multipart_upload(Bucket="back", Key=key)["UploadId"]
    s3.upload_part(Bucket="back", Key=key, UploadId=uid, PartNumber=1, Body=b"x" * 1000)
    s3.abort_multipart_upload(Bucket="back", Key=key, UploadId=uid)
    for call in (
        lambda: s3.upload_part(Bucket="back", Key=key, UploadId=uid, PartNumber=2, Body=b"y"),
        lambda: s3.list_parts(Bucket="back", Key=key, UploadId=uid),
        lambda: s3.abort_multipart_upload(Bucket="back", Key=key, UploadId=uid),
        lambda: s3.complete_multipart_upload(
            Bucket="back", Key=key, UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]}
        ),
        lambda: s3.list_parts(Bucket="back", Key=key, UploadId="../../etc/passwd"),
        lambda: s3.list_parts(Bucket="back", Key=f"{prefix}other-key", UploadId=uid),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "NoSuchUpload"
    with pytest.raises(ClientError):
        s3.head_object(Bucket="back", Key=key)


def test_upload_part_copy(s3, prefix):
    source = os.urandom(12 * MIB)
    s3.put_object(Bucket="local", Key=f"{prefix}source", Body=source)
    key = f"{prefix}assembled"
    uid = s3.create_multipart_upload(Bucket="back", Key=key)["UploadId"]
    a = s3.upload_part_copy(
        Bucket="back", Key=key, UploadId=uid, PartNumber=1,
        CopySource={"Bucket": "local", "Key": f"{prefix}source"}, CopySourceRange=f"bytes={6 * MIB}-{12 * MIB - 1}",
    )["CopyPartResult"]["ETag"]
    b = s3.upload_part_copy(
        Bucket="back", Key=key, UploadId=uid, PartNumber=2,
        CopySource={"Bucket": "local", "Key": f"{prefix}source"}, CopySourceRange="bytes=0-99",
    )["CopyPartResult"]["ETag"]
    s3.complete_multipart_upload(
        Bucket="back", Key=key, UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": a}, {"PartNumber": 2, "ETag": b}]},
    )
    assert s3.get_object(Bucket="back", Key=key)["Body"].read() == source[6 * MIB:] + source[:100]


def test_managed_transfers(s3, prefix):
    data = os.urandom(23 * MIB + 5)
    config = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=4)
    s3.upload_fileobj(io.BytesIO(data), "local", f"{prefix}managed", Config=config)
    head = s3.head_object(Bucket="local", Key=f"{prefix}managed")
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-3"')
    out = io.BytesIO()
    s3.download_fileobj("local", f"{prefix}managed", out, Config=config)
    assert out.getvalue() == data


def test_list_uploads_by_prefix_and_delimiter(s3, prefix):
    ids = {}
    for key in [f"{prefix}a/1", f"{prefix}a/2", f"{prefix}b"]:
        ids[key] = s3.create_multipart_upload(Bucket="local", Key=key)["UploadId"]
    try:
        flat = s3.list_multipart_uploads(Bucket="local", Prefix=prefix)
        assert [u["Key"] for u in flat["Uploads"]] == sorted(ids)
        grouped = s3.list_multipart_uploads(Bucket="local", Prefix=prefix, Delimiter="/")
        assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == [f"{prefix}a/"]
        assert [u["Key"] for u in grouped["Uploads"]] == [f"{prefix}b"]
        page = s3.list_multipart_uploads(Bucket="local", Prefix=prefix, MaxUploads=2)
        assert page["IsTruncated"] and len(page["Uploads"]) == 2
        rest = s3.list_multipart_uploads(
            Bucket="local", Prefix=prefix, KeyMarker=page["NextKeyMarker"], UploadIdMarker=page["NextUploadIdMarker"]
        )
        assert [u["Key"] for u in rest["Uploads"]] == [f"{prefix}b"]
    finally:
        for key, uid in ids.items():
            s3.abort_multipart_upload(Bucket="local", Key=key, UploadId=uid)
