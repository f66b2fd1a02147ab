"""Two gateways of one cluster (S3_ENDPOINT, SECOND_ENDPOINT) with one key
(SHARED_ID / SHARED_SECRET, owner of bucket "shared") made through the first."""
import hashlib
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=os.environ["SHARED_ID"],
                        aws_secret_access_key=os.environ["SHARED_SECRET"],
                        config=Config(retries={"total_max_attempts": 1}))


admin = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1")
admin.create_bucket(Bucket="shared")
one = client(os.environ["S3_ENDPOINT"])
two = client(os.environ["SECOND_ENDPOINT"])
data = os.urandom(300_000)
one.put_object(Bucket="shared", Key="from-one", Body=data)
got = two.get_object(Bucket="shared", Key="from-one")
assert got["Body"].read() == data
assert got["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
assert [o["Key"] for o in two.list_objects_v2(Bucket="shared")["Contents"]] == ["from-one"]
try:
    two.put_object(Bucket="shared", Key="from-one", Body=b"no", IfNoneMatch="*")
    raise AssertionError("If-None-Match: * overwrote the other gateway's object")
except ClientError as e:
    assert e.response["Error"]["Code"] == "PreconditionFailed", e.response
two.put_object(Bucket="shared", Key="from-two", Body=b"two")
assert one.get_object(Bucket="shared", Key="from-two")["Body"].read() == b"two"
print("two gateways: all passed")
