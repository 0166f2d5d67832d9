"""Requests no SDK would send: bad XML, huge headers, truncated bodies, garbage. Each gets an
error (or a closed connection), nothing half-written appears, and the gateway goes on serving
everyone else."""

from __future__ import annotations

import hashlib
import socket
import threading
import urllib.parse

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import Cluster


def signed(cluster: Cluster, method: str, path: str, body: bytes, payload_hash: str | None = None, **headers: str):
    """Headers of a SigV4-signed request (botocore's signer)."""
    url = f"{cluster.gateways[0]}{path}"
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    request.headers["x-amz-content-sha256"] = payload_hash or hashlib.sha256(body).hexdigest()
    SigV4Auth(Credentials(cluster.access_key, cluster.secret_key), "s3", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def raw(cluster: Cluster, data: bytes, read: bool = True, timeout: float = 10) -> bytes:
    """Send bytes on a new connection and return what comes back until it closes or a response
    ends."""
    host, port = urllib.parse.urlparse(cluster.gateways[0]).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        if not read:
            return b""
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and (b"</Error>" in out or b"Content-Length: 0" in out):
                    break
        except (ConnectionResetError, socket.timeout):
            pass
        return out


def request_bytes(method: str, path: str, headers: dict, body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def still_serving(s3, prefix: str) -> None:
    s3.put_object(Bucket="local", Key=f"{prefix}alive", Body=b"yes")
    assert s3.get_object(Bucket="local", Key=f"{prefix}alive")["Body"].read() == b"yes"


def test_bad_xml_is_malformed_xml(cluster, s3, prefix):
    body = b"<Delete><Object><Key>x</Key></Obj"
    headers = signed(cluster, "POST", "/local?delete", body, **{"Content-Type": "application/xml"})
    headers["Content-Length"] = str(len(body))
    headers["Host"] = urllib.parse.urlparse(cluster.gateways[0]).netloc
    reply = raw(cluster, request_bytes("POST", "/local?delete", headers, body))
    assert reply.startswith(b"HTTP/1.1 400") and b"<Code>MalformedXML</Code>" in reply, reply[:500]
    still_serving(s3, prefix)


def test_huge_headers_are_refused(cluster, s3, prefix):
    host = urllib.parse.urlparse(cluster.gateways[0]).netloc
    request = f"GET /local/x HTTP/1.1\r\nHost: {host}\r\nX-Junk: {'a' * 200_000}\r\n\r\n".encode()
    reply = raw(cluster, request)
    assert reply == b"" or reply.startswith(b"HTTP/1.1 431"), reply[:200]
    many = "".join(f"X-H{i}: v\r\n" for i in range(500))
    reply = raw(cluster, f"GET /local/x HTTP/1.1\r\nHost: {host}\r\n{many}\r\n".encode())
    assert reply == b"" or reply.startswith(b"HTTP/1.1 431"), reply[:200]
    still_serving(s3, prefix)


def test_a_truncated_body_writes_nothing(cluster, s3, prefix):
    key = f"/local/{prefix}truncated"
    headers = signed(cluster, "PUT", key, b"", payload_hash="UNSIGNED-PAYLOAD")
    headers["Content-Length"] = "100000"
    headers["Host"] = urllib.parse.urlparse(cluster.gateways[0]).netloc
    raw(cluster, request_bytes("PUT", key, headers, b"only a few bytes"), read=False)
    # The connection closed mid-body: the object must not exist, now or later.
    still_serving(s3, prefix)
    listed = s3.list_objects_v2(Bucket="local", Prefix=prefix)
    assert [o["Key"] for o in listed["Contents"]] == [f"{prefix}alive"]


def test_a_body_that_does_not_match_its_signed_hash_is_refused(cluster, s3, prefix):
    key = f"/local/{prefix}forged"
    headers = signed(cluster, "PUT", key, b"the signed body")
    headers["Content-Length"] = str(len(b"another body!!!"))
    headers["Host"] = urllib.parse.urlparse(cluster.gateways[0]).netloc
    reply = raw(cluster, request_bytes("PUT", key, headers, b"another body!!!"))
    assert reply.startswith(b"HTTP/1.1 400") and b"XAmzContentSHA256Mismatch" in reply, reply[:500]
    assert s3.list_objects_v2(Bucket="local", Prefix=prefix)["KeyCount"] == 0


def test_garbage_and_idle_connections_harm_no_one(cluster, s3, prefix):
    reply = raw(cluster, b"\x16\x03\x01 this is not http\r\n\r\n")
    assert reply == b"" or reply.startswith(b"HTTP/1.1 400")
    # Connections that send half a request and wait do not block others.
    host, port = urllib.parse.urlparse(cluster.gateways[0]).netloc.split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(20)]
    for s in idle:
        s.sendall(b"GET /local/x HTTP/1.1\r\nHost: h\r\n")
    try:
        done = []
        threads = [threading.Thread(target=lambda i=i: done.append(still_serving(s3, f"{prefix}{i}/"))) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(done) == 4
    finally:
        for s in idle:
            s.close()


@pytest.mark.parametrize("path", ["/local/%ZZ", "/local/a/../b", "/local//x"])
def test_odd_paths_get_errors(cluster, path):
    headers = signed(cluster, "GET", path, b"")
    headers["Host"] = urllib.parse.urlparse(cluster.gateways[0]).netloc
    reply = raw(cluster, request_bytes("GET", path, headers, b""))
    assert reply.startswith(b"HTTP/1.1 4"), reply[:300]
