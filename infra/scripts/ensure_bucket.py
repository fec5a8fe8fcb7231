"""Create the bucket named by MANUSCRIBE_STORAGE_URL on an S3-compatible store, if it is missing.

Run once before the workers start (the `storage-init` one-shot service in docker-compose.yml).
Idempotent: an existing bucket is left alone, so running it on every `docker compose up` is safe.
Credentials come from boto3's usual environment variables (AWS_ACCESS_KEY_ID, ...) and are never
printed.

    python infra/scripts/ensure_bucket.py            # reads the environment
    MANUSCRIBE_STORAGE_URL=s3://bucket/prefix MANUSCRIBE_S3_ENDPOINT_URL=http://localhost:8333 ...
"""

from __future__ import annotations

import os
import sys
import time
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError


def bucket_from_url(url: str) -> str:
    """`s3://bucket/prefix` -> `bucket`; anything else is a configuration error."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"MANUSCRIBE_STORAGE_URL must look like s3://bucket[/prefix], got {url!r}")
    return parsed.netloc


def ensure_bucket(client, bucket: str, region: str | None = None) -> bool:
    """Create `bucket` unless it exists. Returns True when it was created."""
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code not in {"404", "NoSuchBucket", "NotFound"}:
            raise
    kwargs: dict = {"Bucket": bucket}
    # AWS wants a location constraint outside us-east-1; SeaweedFS and MinIO ignore it.
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**kwargs)
    except ClientError as err:
        # another replica of this job won the race: that is fine
        if err.response.get("Error", {}).get("Code") in {
            "BucketAlreadyOwnedByYou",
            "BucketAlreadyExists",
        }:
            return False
        raise
    return True


def main() -> int:
    url = os.environ.get("MANUSCRIBE_STORAGE_URL", "")
    try:
        bucket = bucket_from_url(url)
    except ValueError as err:
        print(f"ensure_bucket: {err}", file=sys.stderr)
        return 2
    endpoint = os.environ.get("MANUSCRIBE_S3_ENDPOINT_URL") or None
    region = os.environ.get("AWS_DEFAULT_REGION") or None
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        # path-style addressing: SeaweedFS/MinIO behind a plain service name have no bucket DNS
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )
    deadline = time.monotonic() + float(os.environ.get("ENSURE_BUCKET_TIMEOUT", "60"))
    while True:
        try:
            created = ensure_bucket(client, bucket, region)
            break
        except (BotoCoreError, ClientError) as err:
            # the store may still be starting; retry until the deadline, then fail loudly
            if time.monotonic() > deadline:
                print(f"ensure_bucket: giving up on bucket {bucket!r}: {err}", file=sys.stderr)
                return 1
            time.sleep(2)
    print(f"ensure_bucket: bucket {bucket!r} {'created' if created else 'already exists'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
