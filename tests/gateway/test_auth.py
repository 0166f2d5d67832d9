"""Authentication: AWS Signature V4 in headers and presigned URLs with the configured keys,
S3's error codes for what fails, and unsigned requests only where a bucket allows them."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from conftest import error_code, status


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_a_wrong_secret_is_signature_does_not_match(cluster):
    bad = cluster.client(secret_key="not-the-secret-at-all")
    with pytest.raises(ClientError) as e:
        bad.list_objects_v2(Bucket="local")
    assert error_code(e) == "SignatureDoesNotMatch" and status(e) == 403


def test_an_unknown_key_is_invalid_access_key_id(cluster):
    bad = cluster.client(access_key="nobody", secret_key="whatever-secret")
    with pytest.raises(ClientError) as e:
        bad.head_bucket(Bucket="local")
    assert status(e) == 403
    with pytest.raises(ClientError) as e:
        bad.get_object(Bucket="local", Key="x")
    assert error_code(e) == "InvalidAccessKeyId"


def test_unsigned_requests_only_where_a_bucket_allows_them(cluster, s3, prefix):
    (cluster.dir("public") / "open.txt").write_bytes(b"for everyone")
    s3.put_object(Bucket="local", Key=f"{prefix}closed", Body=b"private")
    anonymous = cluster.client(config={"signature_version": UNSIGNED})
    assert anonymous.get_object(Bucket="public", Key="open.txt")["Body"].read() == b"for everyone"
    assert [o["Key"] for o in anonymous.list_objects_v2(Bucket="public")["Contents"]] == ["open.txt"]
    with pytest.raises(ClientError) as e:
        anonymous.put_object(Bucket="public", Key="graffiti", Body=b"x")
    assert error_code(e) == "AccessDenied" and status(e) == 403
    with pytest.raises(ClientError) as e:
        anonymous.get_object(Bucket="local", Key=f"{prefix}closed")
    assert error_code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        anonymous.list_buckets()
    assert error_code(e) == "AccessDenied"
    # Plain HTTP, no SDK at all.
    code, body = http_get(f"{cluster.gateways[0]}/public/open.txt")
    assert (code, body) == (200, b"for everyone")
    code, body = http_get(f"{cluster.gateways[0]}/local/{prefix}closed")
    assert code == 403 and b"<Code>AccessDenied</Code>" in body


def test_presigned_urls(cluster, prefix):
    s3 = cluster.client(config={"signature_version": "s3v4"})
    s3.put_object(Bucket="local", Key=f"{prefix}shared", Body=b"presigned")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "local", "Key": f"{prefix}shared"}, ExpiresIn=300)
    assert "X-Amz-Signature=" in url
    assert http_get(url) == (200, b"presigned")
    signature = url.split("X-Amz-Signature=")[1][:64]
    tampered = url.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    code, body = http_get(tampered)
    assert code == 403 and b"SignatureDoesNotMatch" in body
    short = s3.generate_presigned_url("get_object", Params={"Bucket": "local", "Key": f"{prefix}shared"}, ExpiresIn=1)
    time.sleep(2.5)
    code, body = http_get(short)
    assert code == 403 and b"AccessDenied" in body
    # A presigned PUT.
    put = s3.generate_presigned_url("put_object", Params={"Bucket": "local", "Key": f"{prefix}uploaded"}, ExpiresIn=300)
    request = urllib.request.Request(put, data=b"via a presigned PUT", method="PUT")
    with urllib.request.urlopen(request, timeout=30) as r:
        assert r.status == 200
    assert s3.get_object(Bucket="local", Key=f"{prefix}uploaded")["Body"].read() == b"via a presigned PUT"


def test_signature_v2_presigned_urls_are_checked_too(cluster, s3, prefix):
    s3.put_object(Bucket="local", Key=f"{prefix}v2", Body=b"version 2")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "local", "Key": f"{prefix}v2"}, ExpiresIn=300)
    if "Signature=" not in url or "X-Amz-Signature" in url:
        pytest.skip("this botocore presigns with SigV4 by default")
    assert http_get(url) == (200, b"version 2")
    code, body = http_get(url.replace("Signature=", "Signature=AAAA"))
    assert code == 403 and b"SignatureDoesNotMatch" in body
