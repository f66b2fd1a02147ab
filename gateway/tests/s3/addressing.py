"""HTTPS and virtual-hosted-style addressing against an Andromède gateway.

Environment: S3_ENDPOINT (https://127.0.0.1:PORT), S3_PORT, AWS_CA_BUNDLE (the gateway's
self-signed certificate), and an admin key. The gateway serves the root domain s3.test:
names under it are resolved to 127.0.0.1 here, as DNS would.
"""
import base64
import os
import socket
import ssl
import urllib.request

import boto3
from botocore.config import Config

PORT = int(os.environ["S3_PORT"])
CA = os.environ["AWS_CA_BUNDLE"]

real_getaddrinfo = socket.getaddrinfo


def resolve(host, *args, **kwargs):
    if isinstance(host, str) and (host == "s3.test" or host.endswith(".s3.test")):
        host = "127.0.0.1"
    return real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = resolve

# Path style over HTTPS, the certificate verified.
path = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1", verify=CA,
                    config=Config(s3={"addressing_style": "path"}))
path.create_bucket(Bucket="hosted")
path.put_object(Bucket="hosted", Key="a/b.txt", Body=b"over tls")
assert path.get_object(Bucket="hosted", Key="a/b.txt")["Body"].read() == b"over tls"
# Over HTTPS botocore sends the body aws-chunked with its CRC32 in a trailer: verified
# and kept.
sent = []
path.meta.events.register("before-send.s3.PutObject", lambda request, **kw: sent.append(dict(request.headers)))
path.put_object(Bucket="hosted", Key="trailer.txt", Body=b"checked in a trailer", ChecksumAlgorithm="CRC32")
assert any("x-amz-trailer" in {k.lower() for k in h} for h in sent), sent
import zlib
crc = base64.b64encode(zlib.crc32(b"checked in a trailer").to_bytes(4, "big")).decode()
h = path.head_object(Bucket="hosted", Key="trailer.txt", ChecksumMode="ENABLED")
assert h.get("ChecksumCRC32") == crc, h

# Virtual-hosted style: the bucket in the host name. The certificate names 127.0.0.1 and
# localhost only, so this client does not verify it (the host is hosted.s3.test).
virtual = boto3.client("s3", endpoint_url=f"https://s3.test:{PORT}", region_name="us-east-1", verify=False,
                       config=Config(s3={"addressing_style": "virtual"}))
seen_hosts = []
virtual.meta.events.register("before-send.s3", lambda request, **kw: seen_hosts.append(request.url))
virtual.put_object(Bucket="hosted", Key="v.txt", Body=b"virtual")
assert virtual.get_object(Bucket="hosted", Key="v.txt")["Body"].read() == b"virtual"
assert virtual.get_object(Bucket="hosted", Key="a/b.txt")["Body"].read() == b"over tls"
keys = [o["Key"] for o in virtual.list_objects_v2(Bucket="hosted")["Contents"]]
assert keys == ["a/b.txt", "trailer.txt", "v.txt"], keys
assert all(url.startswith(f"https://hosted.s3.test:{PORT}/") for url in seen_hosts), seen_hosts
assert path.get_object(Bucket="hosted", Key="v.txt")["Body"].read() == b"virtual"

# A client that does not trust the certificate is refused by its own TLS check; plain
# HTTP to the TLS port gets no S3 answer.
try:
    urllib.request.urlopen(f"https://127.0.0.1:{PORT}/", context=ssl.create_default_context())
    raise AssertionError("an unverified certificate was accepted")
except urllib.error.URLError as e:
    assert "CERTIFICATE_VERIFY_FAILED" in str(e), e
try:
    urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=10).read()
    raise AssertionError("plain HTTP was answered on the TLS port")
except Exception as e:
    assert not isinstance(e, AssertionError), e
print("addressing: all passed")
