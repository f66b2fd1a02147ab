"""The S3 side of `cargo bench -p andromede-gateway`: boto3 against a running gateway.

Environment: S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, BENCH_BUCKET; argv[1]
is the phase. Prints one JSON object. Bodies are pseudo-random, made in memory (or
streamed) so the disk does not take part.
"""
import io
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

BUCKET = os.environ["BENCH_BUCKET"]
MIB = 1 << 20


def client():
    return boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1",
                        config=Config(max_pool_connections=16, retries={"max_attempts": 1}))


def pseudo_random(length, seed):
    del seed  # os.urandom: fast and incompressible
    return os.urandom(length)


class Generated(io.RawIOBase):
    """A non-seekable stream of `length` pseudo-random bytes."""

    def __init__(self, length, seed):
        self.left = length
        self.block = pseudo_random(8 * MIB, seed)

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left, len(self.block))
        buffer[:n] = self.block[:n]
        self.left -= n
        return n


def large(size_mib, rounds):
    s3 = client()
    body = pseudo_random(size_mib * MIB, 7)
    config = TransferConfig()  # as aws-cli: 8 MiB parts, 10 threads
    puts, gets = [], []
    for r in range(rounds):
        start = time.perf_counter()
        s3.upload_fileobj(io.BytesIO(body), BUCKET, f"large-{r}", Config=config)
        puts.append(size_mib / (time.perf_counter() - start))
        out = io.BytesIO()
        start = time.perf_counter()
        s3.download_fileobj(BUCKET, f"large-{r}", out, Config=config)
        gets.append(size_mib / (time.perf_counter() - start))
        assert out.getvalue() == body, "the object came back different"
    return {"put_mib_s": sorted(puts)[len(puts) // 2], "get_mib_s": sorted(gets)[len(gets) // 2]}


def small(count, concurrency):
    s3 = client()
    bodies = [pseudo_random(4096, i) for i in range(count)]

    def put(i):
        s3.put_object(Bucket=BUCKET, Key=f"small/{i:05}", Body=bodies[i])

    def get(i):
        assert s3.get_object(Bucket=BUCKET, Key=f"small/{i:05}")["Body"].read() == bodies[i]

    with ThreadPoolExecutor(concurrency) as pool:
        start = time.perf_counter()
        list(pool.map(put, range(count)))
        put_ops = count / (time.perf_counter() - start)
        start = time.perf_counter()
        list(pool.map(get, range(count)))
        get_ops = count / (time.perf_counter() - start)
    return {"put_ops_s": put_ops, "get_ops_s": get_ops}


def concurrent_uploads(count, size_mib):
    s3 = client()
    config = TransferConfig(max_concurrency=4)

    def upload(i):
        s3.upload_fileobj(Generated(size_mib * MIB, i), BUCKET, f"rss-{i}", Config=config)
        return s3.head_object(Bucket=BUCKET, Key=f"rss-{i}")["ContentLength"]

    start = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        sizes = list(pool.map(upload, range(count)))
    assert sizes == [size_mib * MIB] * count, sizes
    return {"seconds": time.perf_counter() - start, "mib_s": count * size_mib / (time.perf_counter() - start)}


phase = sys.argv[1]
if phase == "large":
    print(json.dumps(large(int(sys.argv[2]), int(sys.argv[3]))))
elif phase == "small":
    print(json.dumps(small(int(sys.argv[2]), int(sys.argv[3]))))
elif phase == "rss":
    print(json.dumps(concurrent_uploads(int(sys.argv[2]), int(sys.argv[3]))))
else:
    sys.exit(f"unknown phase {phase}")
