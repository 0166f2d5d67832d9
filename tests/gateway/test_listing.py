"""Buckets and listings through the gateway with boto3: ListObjectsV2 (prefix, delimiter,
continuation tokens, max-keys, start-after, url encoding), ListObjects v1 (markers),
ListBuckets, HeadBucket, GetBucketLocation."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, status


def put_tree(s3, bucket: str, prefix: str) -> list[str]:
    keys = [f"{prefix}a/{i:02}" for i in range(12)] + [f"{prefix}b/x", f"{prefix}c", f"{prefix}d y+z ç"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    return sorted(keys)


@pytest.mark.parametrize("bucket", ["local", "back"])
def test_list_v2_pages_every_key_once(s3, prefix, bucket):
    keys = put_tree(s3, bucket, prefix)
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=5, **kwargs)
        pages += 1
        assert page["KeyCount"] == len(page.get("Contents", [])) <= 5
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == keys and pages >= 3
    sizes = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    assert sizes == {k: len(k.encode()) for k in keys}


def test_list_v2_with_a_delimiter_groups_prefixes(s3, prefix):
    put_tree(s3, "local", prefix)
    page = s3.list_objects_v2(Bucket="local", Prefix=prefix, Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == [f"{prefix}a/", f"{prefix}b/"]
    assert [o["Key"] for o in page["Contents"]] == [f"{prefix}c", f"{prefix}d y+z ç"]
    # A prefix that is not a directory.
    page = s3.list_objects_v2(Bucket="local", Prefix=f"{prefix}a/1")
    assert [o["Key"] for o in page["Contents"]] == [f"{prefix}a/{i}" for i in ("10", "11")]


def test_list_v2_start_after_and_url_encoding(s3, prefix):
    keys = put_tree(s3, "local", prefix)
    page = s3.list_objects_v2(Bucket="local", Prefix=prefix, StartAfter=f"{prefix}a/09")
    assert [o["Key"] for o in page["Contents"]] == [k for k in keys if k > f"{prefix}a/09"]
    # boto3 asks for url encoding by itself and decodes what comes back (the other tests); asked
    # for explicitly, it hands the encoded keys over as they came.
    raw = s3.list_objects_v2(Bucket="local", Prefix=f"{prefix}d", EncodingType="url")
    assert raw["Contents"][0]["Key"] == f"{prefix}d%20y%2Bz%20%C3%A7"


def test_list_v1_pages_by_marker(s3, prefix):
    keys = put_tree(s3, "local", prefix)
    seen, marker = [], ""
    while True:
        page = s3.list_objects(Bucket="local", Prefix=prefix, Marker=marker, MaxKeys=4)
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        marker = page.get("NextMarker") or page["Contents"][-1]["Key"]
    assert seen == keys


def test_an_empty_listing_and_max_keys_zero(s3, prefix):
    page = s3.list_objects_v2(Bucket="local", Prefix=f"{prefix}nothing/")
    assert page["KeyCount"] == 0 and not page["IsTruncated"] and "Contents" not in page
    s3.put_object(Bucket="local", Key=f"{prefix}x", Body=b"x")
    page = s3.list_objects_v2(Bucket="local", Prefix=prefix, MaxKeys=0)
    assert page["KeyCount"] == 0


def test_the_staging_directory_is_never_listed(s3, prefix):
    upload = s3.create_multipart_upload(Bucket="local", Key=f"{prefix}mp")
    try:
        root = s3.list_objects_v2(Bucket="local", Delimiter="/")
        assert not any(p["Prefix"].startswith(".hoard") for p in root.get("CommonPrefixes", []))
        assert s3.list_objects_v2(Bucket="local", Prefix=".hoard-staging/")["KeyCount"] == 0
    finally:
        s3.abort_multipart_upload(Bucket="local", Key=f"{prefix}mp", UploadId=upload["UploadId"])


def test_buckets(s3):
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == ["back", "local", "public", "remote", "s3"]
    s3.head_bucket(Bucket="local")
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket="nothing-here")
    assert status(e) == 404
    assert s3.get_bucket_location(Bucket="local")["LocationConstraint"] is None
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="nothing-here")
    assert error_code(e) == "NoSuchBucket"


def test_a_listing_sees_writes_at_once(s3, prefix):
    for i in range(5):
        s3.put_object(Bucket="back", Key=f"{prefix}{i}", Body=b"x")
        assert s3.list_objects_v2(Bucket="back", Prefix=prefix)["KeyCount"] == i + 1
