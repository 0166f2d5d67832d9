"""Objects through the gateway with boto3: GET (ranges, conditions), HEAD, PUT (digests,
checksums, metadata), DELETE, DeleteObjects and CopyObject, with S3's error codes."""

from __future__ import annotations

import base64
import datetime
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, status

BUCKETS = ["local", "remote", "back"]


@pytest.mark.parametrize("bucket", BUCKETS)
def test_put_get_head_delete_round_trip(cluster, s3, prefix, bucket):
    key = f"{prefix}data/file one ç.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    put = s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/x-test", Metadata={"team": "vision"})
    md5 = hashlib.md5(data).hexdigest()
    assert put["ETag"] == f'"{md5}"'
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == data
    assert got["ETag"] == put["ETag"]
    assert got["ContentLength"] == len(data)
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"team": "vision"}
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(data) and head["ETag"] == put["ETag"]
    assert abs(head["LastModified"] - datetime.datetime.now(datetime.timezone.utc)) < datetime.timedelta(minutes=5)
    # The other worker's gateway sees the same object.
    other = cluster.client(cluster.gateways[1])
    assert other.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    s3.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert status(e) == 404
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=key)
    assert error_code(e) == "NoSuchKey"
    # Deletes are idempotent.
    s3.delete_object(Bucket=bucket, Key=key)


def test_a_through_write_is_in_the_s3_server_when_put_returns(cluster, s3, prefix):
    key = f"{prefix}through.bin"
    data = os.urandom(100_000)
    s3.put_object(Bucket="remote", Key=key, Body=data)
    direct = cluster.direct().get_object(Bucket=cluster.values["s3_bucket"], Key=cluster.garage_key(key))
    assert direct["Body"].read() == data
    # hoard's own keys stay out of the object's metadata in the S3 server.
    assert not any(k.startswith("hoard-etag") for k in direct["Metadata"])


def test_objects_hoard_only_caches_keep_the_s3_servers_etag(cluster, s3, prefix):
    key = f"{prefix}cached.bin"
    data = os.urandom(1 << 20)
    direct = cluster.direct()
    put = direct.put_object(Bucket=cluster.values["s3_bucket"], Key=cluster.garage_key(key), Body=data)
    head = s3.head_object(Bucket="remote", Key=key)
    assert head["ETag"] == put["ETag"]
    listed = s3.list_objects_v2(Bucket="remote", Prefix=prefix)["Contents"]
    assert [o["ETag"] for o in listed] == [put["ETag"]]
    assert s3.get_object(Bucket="remote", Key=key)["Body"].read() == data


@pytest.mark.parametrize(
    "range_header,expected",
    [("bytes=0-9", (0, 10)), ("bytes=100-", (100, 1000)), ("bytes=-7", (993, 1000)), ("bytes=990-5000", (990, 1000))],
)
def test_ranges(s3, prefix, range_header, expected):
    data = os.urandom(1000)
    s3.put_object(Bucket="local", Key=f"{prefix}r", Body=data)
    got = s3.get_object(Bucket="local", Key=f"{prefix}r", Range=range_header)
    start, end = expected
    assert got["Body"].read() == data[start:end]
    assert got["ContentRange"] == f"bytes {start}-{end - 1}/1000"
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206


def test_a_range_past_the_end_is_invalid_range(s3, prefix):
    s3.put_object(Bucket="local", Key=f"{prefix}r", Body=b"0123456789")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="local", Key=f"{prefix}r", Range="bytes=10-20")
    assert error_code(e) == "InvalidRange" and status(e) == 416


def test_conditional_gets(s3, prefix):
    key = f"{prefix}c"
    etag = s3.put_object(Bucket="local", Key=key, Body=b"conditional")["ETag"]
    assert s3.get_object(Bucket="local", Key=key, IfMatch=etag)["Body"].read() == b"conditional"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="local", Key=key, IfMatch='"0123"')
    assert error_code(e) == "PreconditionFailed" and status(e) == 412
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="local", Key=key, IfNoneMatch=etag)
    assert status(e) == 304
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="local", Key=key, IfModifiedSince=future)
    assert status(e) == 304
    assert s3.get_object(Bucket="local", Key=key, IfModifiedSince=past)["Body"].read() == b"conditional"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="local", Key=key, IfUnmodifiedSince=past)
    assert error_code(e) == "PreconditionFailed"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="local", Key=key, IfNoneMatch=etag)
    assert status(e) == 304


def test_content_md5_and_checksums_are_checked(s3, prefix):
    data = b"checked bytes"
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    s3.put_object(Bucket="local", Key=f"{prefix}ok", Body=data, ContentMD5=good)
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="local", Key=f"{prefix}bad", Body=data, ContentMD5=bad)
    assert error_code(e) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="local", Key=f"{prefix}bad", Body=data, ContentMD5="bm90LWFuLW1kNQ==")
    assert error_code(e) == "InvalidDigest"
    # Nothing of a refused PUT is there.
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="local", Key=f"{prefix}bad")
    assert status(e) == 404
    # A SHA-256 checksum sent as a header, and checked.
    sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
    put = s3.put_object(Bucket="local", Key=f"{prefix}sha", Body=data, ChecksumSHA256=sha)
    assert put["ChecksumSHA256"] == sha
    head = s3.head_object(Bucket="local", Key=f"{prefix}sha", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == sha
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="local", Key=f"{prefix}sha-bad", Body=data, ChecksumSHA256=wrong)
    assert error_code(e) == "BadDigest"


def test_the_sdks_default_crc_checksums_are_kept_and_verified_on_read(cluster, prefix):
    s3 = cluster.client(config={"request_checksum_calculation": "when_supported", "response_checksum_validation": "when_supported"})
    data = os.urandom(200_000)
    put = s3.put_object(Bucket="local", Key=f"{prefix}crc", Body=data, ChecksumAlgorithm="CRC32")
    assert "ChecksumCRC32" in put
    got = s3.get_object(Bucket="local", Key=f"{prefix}crc", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == put["ChecksumCRC32"]
    assert got["Body"].read() == data  # botocore checks the CRC32 while reading


def test_missing_buckets_and_keys_have_s3s_codes(s3, prefix):
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="no-such-bucket", Key="x")
    assert error_code(e) == "NoSuchBucket" and status(e) == 404
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="local", Key=f"{prefix}missing")
    assert error_code(e) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="local", Key=".hoard-staging/x", Body=b"x")
    assert error_code(e) == "InvalidArgument"


def test_exclusive_put_with_if_none_match(s3, prefix):
    key = f"{prefix}once"
    s3.put_object(Bucket="local", Key=key, Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="local", Key=key, Body=b"second", IfNoneMatch="*")
    assert error_code(e) == "PreconditionFailed"
    assert s3.get_object(Bucket="local", Key=key)["Body"].read() == b"first"


def test_directory_markers(s3, prefix):
    s3.put_object(Bucket="local", Key=f"{prefix}dir/", Body=b"")
    head = s3.head_object(Bucket="local", Key=f"{prefix}dir/")
    assert head["ContentLength"] == 0
    listed = s3.list_objects_v2(Bucket="local", Prefix=prefix)
    assert [o["Key"] for o in listed["Contents"]] == [f"{prefix}dir/"]
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="local", Key=f"{prefix}bytes/", Body=b"not empty")
    assert error_code(e) == "InvalidRequest"


def test_delete_objects(s3, prefix):
    keys = [f"{prefix}d{i}" for i in range(30)]
    for k in keys[:20]:
        s3.put_object(Bucket="back", Key=k, Body=k.encode())
    out = s3.delete_objects(Bucket="back", Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in out["Deleted"]) == sorted(keys)
    assert "Errors" not in out
    assert s3.list_objects_v2(Bucket="back", Prefix=prefix)["KeyCount"] == 0
    quiet = s3.delete_objects(Bucket="back", Delete={"Objects": [{"Key": keys[0]}], "Quiet": True})
    assert "Deleted" not in quiet


@pytest.mark.parametrize("bucket", ["local", "remote"])
def test_copy_object(cluster, s3, prefix, bucket):
    data = os.urandom(6 * 1024 * 1024)
    src = s3.put_object(Bucket=bucket, Key=f"{prefix}src", Body=data, Metadata={"a": "1"}, ContentType="text/plain")
    out = s3.copy_object(Bucket=bucket, Key=f"{prefix}copy", CopySource={"Bucket": bucket, "Key": f"{prefix}src"})
    assert out["CopyObjectResult"]["ETag"] == src["ETag"]
    got = s3.get_object(Bucket=bucket, Key=f"{prefix}copy")
    assert got["Body"].read() == data
    assert got["Metadata"] == {"a": "1"} and got["ContentType"] == "text/plain"
    # REPLACE changes the metadata, also of the object itself.
    s3.copy_object(
        Bucket=bucket,
        Key=f"{prefix}src",
        CopySource={"Bucket": bucket, "Key": f"{prefix}src"},
        Metadata={"b": "2"},
        MetadataDirective="REPLACE",
    )
    assert s3.head_object(Bucket=bucket, Key=f"{prefix}src")["Metadata"] == {"b": "2"}
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key=f"{prefix}src", CopySource={"Bucket": bucket, "Key": f"{prefix}src"})
    assert error_code(e) == "InvalidRequest"
    with pytest.raises(ClientError) as e:
        s3.copy_object(
            Bucket=bucket, Key=f"{prefix}c2", CopySource={"Bucket": bucket, "Key": f"{prefix}src"}, CopySourceIfMatch='"nope"'
        )
    assert error_code(e) == "PreconditionFailed"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key=f"{prefix}c3", CopySource={"Bucket": bucket, "Key": f"{prefix}none"})
    assert error_code(e) == "NoSuchKey"
    if bucket == "remote":
        # The copy is in the S3 server too (server-side copied there).
        direct = cluster.direct().get_object(Bucket=cluster.values["s3_bucket"], Key=cluster.garage_key(f"{prefix}copy"))
        assert direct["Body"].read() == data


def test_copy_between_buckets(s3, prefix):
    data = os.urandom(300_000)
    s3.put_object(Bucket="local", Key=f"{prefix}x", Body=data)
    out = s3.copy_object(Bucket="back", Key=f"{prefix}y", CopySource={"Bucket": "local", "Key": f"{prefix}x"})
    assert out["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert s3.get_object(Bucket="back", Key=f"{prefix}y")["Body"].read() == data


def test_a_large_object_streams_whole(s3, prefix):
    data = os.urandom(40 * 1024 * 1024 + 123)
    s3.put_object(Bucket="local", Key=f"{prefix}large", Body=data)
    got = s3.get_object(Bucket="local", Key=f"{prefix}large")
    assert got["Body"].read() == data
