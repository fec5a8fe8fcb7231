"""The storage seam: whole-object put/get by key, same keys in a folder and in S3."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class Storage(Protocol):
    url: str

    def put(self, key: str, data: bytes) -> None:
        """Write the whole object atomically (readers never see half an object)."""
        ...

    def get(self, key: str) -> bytes:
        """Raise KeyError when the key does not exist."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under `prefix`, in lexical order."""
        ...

    def delete(self, key: str) -> None: ...
