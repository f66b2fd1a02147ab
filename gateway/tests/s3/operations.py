"""boto3 against an Andromède gateway: S3 operations and errors as AWS documents them.

Environment: S3_ENDPOINT, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (an admin key),
READER_ID / READER_SECRET (a key with photos:read only).
"""
import base64
import hashlib
import os
import sys

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3_ENDPOINT"]


def client(key_id=None, secret=None, **config):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=key_id or os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, **config),
    )


def error_of(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{call.__name__} succeeded but should have failed")


s3 = client()
s3.create_bucket(Bucket="photos")
assert error_of(s3.create_bucket, Bucket="photos") == ("BucketAlreadyOwnedByYou", 409)
assert error_of(s3.create_bucket, Bucket="Bad_Name") == ("InvalidBucketName", 400)
assert "photos" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
s3.head_bucket(Bucket="photos")
assert s3.get_bucket_versioning(Bucket="photos").get("Status") is None
assert error_of(s3.head_bucket, Bucket="missing-bucket")[1] == 404

# Put and get: bytes, ETag = MD5, metadata and headers kept.
body = bytes(range(256)) * 4000  # 1 024 000 bytes: several segments
put = s3.put_object(
    Bucket="photos", Key="dir/one.bin", Body=body, ContentType="image/x-test",
    Metadata={"mtime": "1700000000.25", "Owner": "me"},
    ContentEncoding="identity", ContentDisposition='attachment; filename="one.bin"',
    ContentLanguage="fr", CacheControl="max-age=60",
)
md5 = hashlib.md5(body).hexdigest()
assert put["ETag"] == f'"{md5}"', put["ETag"]
got = s3.get_object(Bucket="photos", Key="dir/one.bin")
assert got["Body"].read() == body
assert got["ETag"] == f'"{md5}"'
assert got["ContentType"] == "image/x-test"
assert got["Metadata"] == {"mtime": "1700000000.25", "owner": "me"}, got["Metadata"]
assert got["ContentDisposition"] == 'attachment; filename="one.bin"'
assert got["ContentLanguage"] == "fr" and got["CacheControl"] == "max-age=60"
head = s3.head_object(Bucket="photos", Key="dir/one.bin")
assert head["ContentLength"] == len(body) and head["ETag"] == f'"{md5}"'

# Ranges, suffix ranges, past the end.
r = s3.get_object(Bucket="photos", Key="dir/one.bin", Range="bytes=100-199")
assert r["Body"].read() == body[100:200] and r["ContentRange"] == f"bytes 100-199/{len(body)}"
r = s3.get_object(Bucket="photos", Key="dir/one.bin", Range="bytes=-10")
assert r["Body"].read() == body[-10:]
r = s3.get_object(Bucket="photos", Key="dir/one.bin", Range="bytes=1023990-")
assert r["Body"].read() == body[1023990:]
assert error_of(s3.get_object, Bucket="photos", Key="dir/one.bin", Range=f"bytes={len(body)}-") == ("InvalidRange", 416)

# Conditional reads.
assert error_of(s3.get_object, Bucket="photos", Key="dir/one.bin", IfMatch='"0000"') == ("PreconditionFailed", 412)
assert error_of(s3.get_object, Bucket="photos", Key="dir/one.bin", IfNoneMatch=f'"{md5}"')[1] == 304
s3.get_object(Bucket="photos", Key="dir/one.bin", IfMatch=f'"{md5}"')
assert error_of(s3.get_object, Bucket="photos", Key="dir/one.bin", IfModifiedSince=head["LastModified"])[1] == 304
r = s3.get_object(Bucket="photos", Key="dir/one.bin", ResponseContentType="text/plain", ResponseCacheControl="no-store")
assert r["ContentType"] == "text/plain" and r["CacheControl"] == "no-store"

# Conditional writes.
got = error_of(s3.put_object, Bucket="photos", Key="dir/one.bin", Body=b"x", IfNoneMatch="*")
assert got == ("PreconditionFailed", 412), got
got = error_of(s3.put_object, Bucket="photos", Key="dir/one.bin", Body=b"x", IfMatch='"0000"')
assert got == ("PreconditionFailed", 412), got
s3.put_object(Bucket="photos", Key="new.txt", Body=b"first", IfNoneMatch="*")
s3.put_object(Bucket="photos", Key="new.txt", Body=b"second", IfMatch=f'"{hashlib.md5(b"first").hexdigest()}"')
assert s3.get_object(Bucket="photos", Key="new.txt")["Body"].read() == b"second"

# Content-MD5 and checksums: a wrong one stores nothing.
good = base64.b64encode(hashlib.md5(b"checked").digest()).decode()
s3.put_object(Bucket="photos", Key="md5.txt", Body=b"checked", ContentMD5=good)
assert error_of(s3.put_object, Bucket="photos", Key="bad.txt", Body=b"checked", ContentMD5=base64.b64encode(b"0" * 16).decode()) == ("BadDigest", 400)
assert error_of(s3.head_object, Bucket="photos", Key="bad.txt")[1] == 404
sha = base64.b64encode(hashlib.sha256(b"summed").digest()).decode()
s3.put_object(Bucket="photos", Key="sum.txt", Body=b"summed", ChecksumSHA256=sha)
h = s3.head_object(Bucket="photos", Key="sum.txt", ChecksumMode="ENABLED")
assert h["ChecksumSHA256"] == sha, h
assert error_of(s3.put_object, Bucket="photos", Key="bad.txt", Body=b"summed", ChecksumSHA256=base64.b64encode(b"1" * 32).decode()) == ("BadDigest", 400)
s3.put_object(Bucket="photos", Key="crc.txt", Body=b"crc", ChecksumAlgorithm="CRC32")
assert s3.head_object(Bucket="photos", Key="crc.txt", ChecksumMode="ENABLED").get("ChecksumCRC32")

# Listings: v2 with delimiter and pagination, v1 with markers, url encoding, owner.
for k in ["list/a", "list/b/1", "list/b/2", "list/c", "list/d é"]:
    s3.put_object(Bucket="photos", Key=k, Body=k.encode())
v2 = s3.list_objects_v2(Bucket="photos", Prefix="list/", Delimiter="/")
assert [o["Key"] for o in v2["Contents"]] == ["list/a", "list/c", "list/d é"], v2
assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["list/b/"]
keys, token = [], None
while True:
    kw = {"ContinuationToken": token} if token else {}
    page = s3.list_objects_v2(Bucket="photos", Prefix="list/", MaxKeys=2, FetchOwner=True, **kw)
    keys += [o["Key"] for o in page.get("Contents", [])]
    assert all("Owner" in o for o in page.get("Contents", []))
    if not page["IsTruncated"]:
        break
    token = page["NextContinuationToken"]
assert keys == ["list/a", "list/b/1", "list/b/2", "list/c", "list/d é"], keys
after = s3.list_objects_v2(Bucket="photos", Prefix="list/", StartAfter="list/b/2")
assert [o["Key"] for o in after["Contents"]] == ["list/c", "list/d é"]
keys, marker = [], ""
while True:
    page = s3.list_objects(Bucket="photos", Prefix="list/", Delimiter="/", MaxKeys=1, Marker=marker)
    keys += [o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    if not page["IsTruncated"]:
        break
    marker = page["NextMarker"]
assert keys == ["list/a", "list/b/", "list/c", "list/d é"], keys
enc = s3.list_objects_v2(Bucket="photos", Prefix="list/d", EncodingType="url")
# botocore decodes only when it asked for the encoding itself: here the raw form shows.
assert [o["Key"] for o in enc["Contents"]] == ["list/d%20%C3%A9"], enc
assert s3.list_objects_v2(Bucket="photos", MaxKeys=0)["KeyCount"] == 0

# Copy: COPY keeps metadata, REPLACE replaces it; source conditions.
s3.copy_object(Bucket="photos", Key="copy.bin", CopySource="photos/dir/one.bin")
c = s3.head_object(Bucket="photos", Key="copy.bin")
assert c["ETag"] == f'"{md5}"' and c["Metadata"] == {"mtime": "1700000000.25", "owner": "me"}
s3.copy_object(Bucket="photos", Key="copy2.bin", CopySource="photos/dir/one.bin", MetadataDirective="REPLACE", Metadata={"new": "yes"}, ContentType="text/x-new")
c2 = s3.head_object(Bucket="photos", Key="copy2.bin")
assert c2["Metadata"] == {"new": "yes"} and c2["ContentType"] == "text/x-new"
assert s3.get_object(Bucket="photos", Key="copy2.bin")["Body"].read() == body
assert error_of(s3.copy_object, Bucket="photos", Key="c3", CopySource="photos/dir/one.bin", CopySourceIfMatch='"0000"') == ("PreconditionFailed", 412)
assert error_of(s3.copy_object, Bucket="photos", Key="dir/one.bin", CopySource="photos/dir/one.bin")[0] == "InvalidRequest"

# Multi-delete, quiet and not.
out = s3.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": "list/a"}, {"Key": "list/c"}, {"Key": "never-was"}]})
assert sorted(d["Key"] for d in out["Deleted"]) == ["list/a", "list/c", "never-was"]
out = s3.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": "list/b/1"}], "Quiet": True})
assert not out.get("Deleted") and not out.get("Errors")
assert [o["Key"] for o in s3.list_objects_v2(Bucket="photos", Prefix="list/")["Contents"]] == ["list/b/2", "list/d é"]
s3.delete_object(Bucket="photos", Key="list/b/2")
assert error_of(s3.get_object, Bucket="photos", Key="list/b/2") == ("NoSuchKey", 404)
assert error_of(s3.delete_bucket, Bucket="photos") == ("BucketNotEmpty", 409)

# Multipart: parts, listing, bad completions (nothing changes), completion, ranges.
MIB = 1 << 20
parts_data = [bytes([i]) * (5 * MIB) for i in (1, 2)] + [b"tail" * 1000]
up = s3.create_multipart_upload(Bucket="photos", Key="mp.bin", ContentType="application/x-mp", Metadata={"mtime": "42"})
uid = up["UploadId"]
etags = []
for n, data in enumerate(parts_data, start=1):
    r = s3.upload_part(Bucket="photos", Key="mp.bin", UploadId=uid, PartNumber=n, Body=data)
    assert r["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    etags.append(r["ETag"])
listed = s3.list_parts(Bucket="photos", Key="mp.bin", UploadId=uid)
assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
assert [p["Size"] for p in listed["Parts"]] == [len(d) for d in parts_data]
page = s3.list_parts(Bucket="photos", Key="mp.bin", UploadId=uid, MaxParts=2)
assert page["IsTruncated"] and page["NextPartNumberMarker"] == 2
uploads = s3.list_multipart_uploads(Bucket="photos")["Uploads"]
assert [(u["Key"], u["UploadId"]) for u in uploads] == [("mp.bin", uid)]
def complete(parts, **kw):
    return s3.complete_multipart_upload(Bucket="photos", Key="mp.bin", UploadId=uid, MultipartUpload={"Parts": parts}, **kw)
assert error_of(complete, [{"PartNumber": 2, "ETag": etags[1]}, {"PartNumber": 1, "ETag": etags[0]}]) == ("InvalidPartOrder", 400)
assert error_of(complete, [{"PartNumber": 1, "ETag": etags[0]}, {"PartNumber": 2, "ETag": '"00000000000000000000000000000000"'}]) == ("InvalidPart", 400)
assert error_of(complete, [{"PartNumber": 1, "ETag": etags[0]}, {"PartNumber": 4, "ETag": etags[1]}]) == ("InvalidPart", 400)
assert error_of(complete, [{"PartNumber": 3, "ETag": etags[2]}, {"PartNumber": 2, "ETag": etags[1]}])[0] == "InvalidPartOrder"
s3.put_object(Bucket="photos", Key="mp.bin", Body=b"placeholder")
assert error_of(complete, [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)], IfNoneMatch="*") == ("PreconditionFailed", 412)
done = complete([{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)])
expected_etag = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in parts_data)).hexdigest() + "-3"
assert done["ETag"] == f'"{expected_etag}"', done
whole = b"".join(parts_data)
got = s3.get_object(Bucket="photos", Key="mp.bin")
assert got["Body"].read() == whole and got["ETag"] == f'"{expected_etag}"'
assert got["ContentType"] == "application/x-mp" and got["Metadata"] == {"mtime": "42"}
assert s3.head_object(Bucket="photos", Key="mp.bin")["PartsCount"] == 3
r = s3.get_object(Bucket="photos", Key="mp.bin", Range=f"bytes={5 * MIB - 10}-{5 * MIB + 9}")
assert r["Body"].read() == whole[5 * MIB - 10:5 * MIB + 10]
assert error_of(s3.list_parts, Bucket="photos", Key="mp.bin", UploadId=uid) == ("NoSuchUpload", 404)
assert not s3.list_multipart_uploads(Bucket="photos").get("Uploads")
# UploadPartCopy with a range, then abort.
up2 = s3.create_multipart_upload(Bucket="photos", Key="mp2.bin")["UploadId"]
r = s3.upload_part_copy(Bucket="photos", Key="mp2.bin", UploadId=up2, PartNumber=1, CopySource="photos/mp.bin", CopySourceRange=f"bytes={5 * MIB - 100}-{5 * MIB + 99}")
assert r["CopyPartResult"]["ETag"] == f'"{hashlib.md5(whole[5 * MIB - 100:5 * MIB + 100]).hexdigest()}"'
assert error_of(s3.upload_part_copy, Bucket="photos", Key="mp2.bin", UploadId=up2, PartNumber=2, CopySource="photos/mp.bin", CopySourceRange=f"bytes=0-{len(whole)}") == ("InvalidRange", 416)
s3.complete_multipart_upload(Bucket="photos", Key="mp2.bin", UploadId=up2, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}]})
assert s3.get_object(Bucket="photos", Key="mp2.bin")["Body"].read() == whole[5 * MIB - 100:5 * MIB + 100]
up3 = s3.create_multipart_upload(Bucket="photos", Key="mp3.bin")["UploadId"]
s3.upload_part(Bucket="photos", Key="mp3.bin", UploadId=up3, PartNumber=1, Body=b"abandoned")
s3.abort_multipart_upload(Bucket="photos", Key="mp3.bin", UploadId=up3)
assert error_of(s3.upload_part, Bucket="photos", Key="mp3.bin", UploadId=up3, PartNumber=2, Body=b"x") == ("NoSuchUpload", 404)
assert error_of(s3.abort_multipart_upload, Bucket="photos", Key="mp3.bin", UploadId="00" * 16) == ("NoSuchUpload", 404)
assert error_of(s3.upload_part, Bucket="photos", Key="mp3.bin", UploadId=up3, PartNumber=10001, Body=b"x")[1] == 400
assert error_of(s3.head_object, Bucket="photos", Key="mp3.bin")[1] == 404

# Who may do what.
reader = client(os.environ["READER_ID"], os.environ["READER_SECRET"])
assert reader.get_object(Bucket="photos", Key="dir/one.bin")["Body"].read() == body
assert error_of(reader.put_object, Bucket="photos", Key="no", Body=b"no") == ("AccessDenied", 403)
assert error_of(reader.delete_object, Bucket="photos", Key="dir/one.bin") == ("AccessDenied", 403)
assert error_of(reader.create_bucket, Bucket="readers-own") == ("AccessDenied", 403)
assert [b["Name"] for b in reader.list_buckets()["Buckets"]] == ["photos"]
wrong = client(os.environ["AWS_ACCESS_KEY_ID"], "x" * 40)
assert error_of(wrong.list_buckets) == ("SignatureDoesNotMatch", 403)
assert error_of(client("AKANDNOSUCHKEY000000", "y" * 40).list_buckets) == ("InvalidAccessKeyId", 403)
anonymous = boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1", config=Config(signature_version=botocore.UNSIGNED))
assert error_of(anonymous.list_objects_v2, Bucket="photos") == ("AccessDenied", 403)
assert error_of(s3.get_bucket_policy, Bucket="photos") == ("NotImplemented", 501)

# Presigned GET and PUT (SigV4 query authentication), used by curl.
import subprocess
import time
s3 = client(signature_version="s3v4")


def curl(*args):
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True, check=True)
    body, _, code = out.stdout.rpartition(b"\n")
    return int(code), body


url = s3.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "dir/one.bin"}, ExpiresIn=300)
assert curl(url) == (200, body)
url = s3.generate_presigned_url("put_object", Params={"Bucket": "photos", "Key": "presigned.txt"}, ExpiresIn=300)
code, _ = curl("-X", "PUT", "--data-binary", "via presigned put", url)
assert code == 200, code
assert s3.get_object(Bucket="photos", Key="presigned.txt")["Body"].read() == b"via presigned put"
url = s3.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "dir/one.bin"}, ExpiresIn=1)
time.sleep(2)
code, answer = curl(url)
assert code == 403 and b"AccessDenied" in answer, (code, answer)
tampered = s3.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "dir/one.bin"}, ExpiresIn=300)
code, answer = curl(tampered.replace("dir/one.bin", "dir/two.bin"))
assert code == 403 and b"SignatureDoesNotMatch" in answer, (code, answer)

# A clock too far off (an hour late; the gateway allows 15 minutes).
import datetime
import botocore.auth
real_now = botocore.auth.get_current_datetime
botocore.auth.get_current_datetime = lambda *a, **k: real_now(*a, **k) - datetime.timedelta(hours=1)
assert error_of(client().list_buckets) == ("RequestTimeTooSkewed", 403)
botocore.auth.get_current_datetime = real_now
s3.list_buckets()

# Malformed XML in a signed request.
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
raw_url = f"{ENDPOINT}/photos?delete"
payload = b"<Delete><Object><Key>unclosed</Object>"
request = AWSRequest(method="POST", url=raw_url, data=payload, headers={"Content-MD5": base64.b64encode(hashlib.md5(payload).digest()).decode(), "x-amz-content-sha256": hashlib.sha256(payload).hexdigest()})
SigV4Auth(boto3.Session().get_credentials(), "s3", "us-east-1").add_auth(request)
prepared = request.prepare()
code, answer = curl("-X", "POST", *sum([["-H", f"{k}: {v}"] for k, v in prepared.headers.items()], []), "--data-binary", payload.decode(), raw_url)
assert code == 400 and b"MalformedXML" in answer, (code, answer)
assert s3.head_object(Bucket="photos", Key="dir/one.bin")["ContentLength"] == len(body)

# The bucket empties and goes.
for o in s3.list_objects_v2(Bucket="photos")["Contents"]:
    s3.delete_object(Bucket="photos", Key=o["Key"])
s3.delete_bucket(Bucket="photos")
assert error_of(s3.head_bucket, Bucket="photos")[1] == 404
# A refused request whose body is left unread closes its connection, and says so first:
# a client reusing the connection would lose its next request (or replay a conditional
# write on retry).
import http.client
from urllib.parse import urlparse
endpoint = urlparse(ENDPOINT)
raw = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=30)
raw.request("PUT", "/photos/unsigned.bin", body=b"z" * 4096)
refused = raw.getresponse()
refused.read()
assert refused.status == 403, refused.status
assert refused.getheader("Connection", "").lower() == "close", refused.getheaders()
raw.close()

print("operations: all passed")
