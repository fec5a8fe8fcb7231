"""Find a document's source again, to draw its pages in the report.

A document JSON carries the source's sha256 (`Document.id`) and media type. The source is looked
for, in order: where the run's manifest says it was read from (if its hash still matches), in a
`sources/<sha256>.<ext>` folder of the output's cache, and in the configured storage (S3 for the
distributed mode, where `manuscribe results` downloads results but not sources).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from manuscribe.inputs import MEDIA_TYPES, InputError, SourceInfo, file_sha256, iter_pages
from manuscribe.model import Document
from manuscribe.storage import Storage
from manuscribe.storage.keys import source_key

log = logging.getLogger(__name__)
CACHE_DIR = ".manuscribe"


class SourceFinder:
    """Page images for the documents of one output folder."""

    def __init__(self, folder: Path, storage: Storage | None = None):
        self.folder = folder
        self.storage = storage  # a Storage holding `sources/<sha256>.<ext>`, or None
        self.known: dict[str, Path] = {}
        for manifest in sorted((folder / CACHE_DIR / "jobs").glob("*/manifest.json")):
            try:
                documents = json.loads(manifest.read_text()).get("documents", [])
            except (OSError, ValueError):
                continue
            for doc in documents:
                if doc.get("sha256") and doc.get("source"):
                    self.known.setdefault(doc["sha256"], Path(doc["source"]))
        self._tmp = tempfile.TemporaryDirectory(prefix="manuscribe-report-")

    def close(self) -> None:
        self._tmp.cleanup()

    def find(self, document: Document) -> Path | None:
        ext = MEDIA_TYPES.get(document.media_type)
        if ext is None:
            return None
        candidates = [self.known.get(document.id)]
        candidates.append(self.folder / CACHE_DIR / source_key(document.id, ext))
        for path in candidates:
            if path is not None and path.is_file() and file_sha256(path) == document.id:
                return path
        if self.storage is not None:
            target = Path(self._tmp.name) / f"{document.id}.{ext}"
            try:
                target.write_bytes(self.storage.get(source_key(document.id, ext)))
                return target
            except KeyError:
                log.debug("source %s is not in %s", document.id, self.storage.url)
            except Exception as exc:  # unreachable: do not wait for it once per document
                log.warning("storage %s unusable for sources: %s", self.storage.url, exc)
                self.storage = None
        return None

    def page_image(self, document: Document) -> Callable[[int], Image.Image] | None:
        """`page_image(number)` at the page's dpi, or None when the source cannot be found."""
        path = self.find(document)
        if path is None:
            return None
        pages = len(document.pages)
        info = SourceInfo(path, document.name, document.id, document.media_type, pages)
        dpis = {p.number: p.dpi for p in document.pages}

        def render(number: int) -> Image.Image:
            for _, image, _ in iter_pages(info, dpis.get(number, 200), 10**12, [number]):
                if isinstance(image, InputError):
                    raise image
                return image
            raise KeyError(number)

        return render
