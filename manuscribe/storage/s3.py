"""S3 storage (AWS, SeaweedFS, MinIO, Ceph) through boto3, same keys as the local folder.

Every write is one whole-object PUT, which S3 makes visible atomically, so a reader never sees half
an object and a repeated task overwrites the same key with the same bytes. Throttling, 5xx and
connection errors are retried by botocore's own retry handler with exponential backoff and jitter.
Credentials come only from boto3's usual chain (AWS_* variables, profile, instance role): they are
never passed through here, stored on the object, or logged.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from manuscribe.storage.keys import check_key

# botocore's DEBUG log prints request headers (the access key id is in Authorization), and its
# INFO log chatters on every client ("Found credentials ..."): WARNING, even under --verbose.
for _name in ("botocore", "boto3", "s3transfer"):
    if logging.getLogger(_name).level == logging.NOTSET:  # an explicit choice is respected
        logging.getLogger(_name).setLevel(logging.WARNING)

# A SeaweedFS or S3 outage of up to about a minute is ridden out inside one call.
DEFAULT_MAX_ATTEMPTS = 12
MULTIPART_BYTES = 64 * 2**20
_MISSING = {"404", "NoSuchKey", "NotFound"}


def s3_client(endpoint_url: str | None = None, max_attempts: int | None = None):
    """A boto3 S3 client with bounded retries and timeouts; endpoint from the settings or env."""
    endpoint_url = endpoint_url or os.environ.get("MANUSCRIBE_S3_ENDPOINT_URL") or None
    attempts = max_attempts or int(
        os.environ.get("MANUSCRIBE_S3_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)
    )
    config = Config(
        retries={"max_attempts": attempts, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
        # path-style works with every S3-compatible server; AWS keeps virtual-host style
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        signature_version="s3v4",
    )
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    if endpoint_url and not region:
        region = "us-east-1"  # S3-compatible servers ignore it, but signing needs one
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config
    )


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix"); credentials in URLs are refused."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URL: {url!r}")
    if "@" in parsed.netloc:
        raise ValueError("S3 credentials go in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, not URLs")
    return parsed.netloc, parsed.path.strip("/")


class S3Storage:
    """Keys under `s3://bucket/prefix/`; one client per process (boto3 clients are thread-safe)."""

    def __init__(self, bucket: str, prefix: str = "", client=None, endpoint_url: str | None = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = client or s3_client(endpoint_url)
        self._transfer = TransferConfig(multipart_threshold=MULTIPART_BYTES, max_concurrency=4)

    @classmethod
    def from_url(cls, url: str, endpoint_url: str | None = None) -> S3Storage:
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix, endpoint_url=endpoint_url)

    def __repr__(self) -> str:
        return f"S3Storage({self.url!r})"

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, path: Path) -> None:
        """Upload a file without reading it into memory (multipart above 64 MB, still atomic)."""
        if path.stat().st_size < MULTIPART_BYTES:  # one request: the transfer manager costs ~20 ms
            with path.open("rb") as handle:
                self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=handle)
            return
        self.client.upload_file(str(path), self.bucket, self._key(key), Config=self._transfer)

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise KeyError(key) from None
            raise
        return response["Body"].read()

    def get_file(self, key: str, path: Path) -> None:
        """Download to `path` through a temp file + rename, so `path` is never half-written."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            with tmp.open("wb") as handle:
                shutil.copyfileobj(response["Body"], handle, 1 << 20)  # streamed, not in memory
        except ClientError as exc:
            tmp.unlink(missing_ok=True)
            if _code(exc) in _MISSING:
                raise KeyError(key) from None
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise
        return True

    def list(self, prefix: str) -> Iterator[str]:
        """Keys equal to `prefix` or under `prefix/`, like the local folder's listing."""
        base = prefix.rstrip("/")
        full = f"{self._key(base)}/" if base else (f"{self.prefix}/" if self.prefix else "")
        strip = len(self.prefix) + 1 if self.prefix else 0
        if base and not prefix.endswith("/") and self.exists(base):
            yield base
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"][strip:]

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (services.sh and tests; production buckets exist)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
