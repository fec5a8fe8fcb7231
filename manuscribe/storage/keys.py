"""Storage keys from the design, derived from content hashes and sanitised names only.

No input name can escape its prefix: names are reduced to a safe character set and `..` is refused.
"""

from __future__ import annotations

import re
import unicodedata

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, max_length: int = 120) -> str:
    """A file-name-safe, non-empty, traversal-free version of `name` (one path component)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE.sub("_", ascii_name).strip("._") or "document"
    return cleaned[:max_length]


def check_key(key: str) -> str:
    parts = key.split("/")
    if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid storage key {key!r}")
    return key


def source_key(sha256: str, ext: str) -> str:
    return f"sources/{sha256}.{ext}"


def ocr_key(sha256: str, page: int, fingerprint: str) -> str:
    return f"pages/{sha256}/{page}/ocr-{fingerprint}.json"


def correct_key(sha256: str, page: int, fingerprint: str) -> str:
    return f"pages/{sha256}/{page}/correct-{fingerprint}.json"


def manifest_key(job: str) -> str:
    return f"jobs/{safe_name(job)}/manifest.json"


def failure_key(job: str, name: str, page: int | None) -> str:
    suffix = "document" if page is None else f"page-{page}"
    return f"jobs/{safe_name(job)}/failures/{safe_name(name)}.{suffix}.json"


def result_key(job: str, name: str, ext: str) -> str:
    return f"results/{safe_name(job)}/{safe_name(name)}.{ext}"
