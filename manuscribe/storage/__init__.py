"""Storage behind one interface: a local folder or S3, same keys in both."""

from __future__ import annotations

from manuscribe.storage.base import Storage
from manuscribe.storage.local import LocalStorage


def open_storage(url: str, endpoint_url: str | None = None) -> Storage:
    """`s3://bucket/prefix` opens S3 (boto3); anything else is a local folder."""
    if url.startswith("s3://"):
        from manuscribe.storage.s3 import S3Storage

        return S3Storage.from_url(url, endpoint_url=endpoint_url)
    return LocalStorage(url.removeprefix("file://"))


__all__ = ["LocalStorage", "Storage", "open_storage"]
