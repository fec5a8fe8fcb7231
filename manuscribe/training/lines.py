"""Line images for training: crops of ground-truth lines, stored once, read back cheaply.

A line is cropped to the bounding box of its polygon (what a detector's box gives at inference),
converted to grey and scaled to the recogniser's input height. Crops are stored as PNG files with a
TSV index, so a run of many epochs decodes small images instead of whole scans.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from manuscribe.training.groundtruth import GtPage

LINE_HEIGHT = 48  # the PP-OCR recogniser's input height
MAX_ASPECT = 60  # longer lines are cut to this width / height (the recogniser sees one line)
INDEX_FIELDS = ["file", "text", "collection", "page", "language", "kind"]


@dataclass
class LineSample:
    file: str  # relative to the store folder
    text: str
    collection: str
    page: str
    language: str = ""
    kind: str = ""


def crop_lines(page: GtPage, height: int = LINE_HEIGHT) -> Iterator[tuple[np.ndarray, str, str]]:
    """(grey uint8 crop scaled to `height`, text, line kind) for each usable line of a page."""
    with Image.open(page.image_path) as image:
        grey = image.convert("L")
    for line in page.lines:
        x0, y0, x1, y1 = line.bbox
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        crop = grey.crop((x0, y0, x1, y1))
        width = max(1, round(crop.width * height / crop.height))
        width = min(width, height * MAX_ASPECT)
        crop = crop.resize((width, height), Image.Resampling.BILINEAR)
        yield np.asarray(crop, dtype=np.uint8), line.text, line.kind


class LineStore:
    """A folder of line crops plus `index.tsv`; appending is resumable by page."""

    def __init__(self, root: Path):
        self.root = root
        self.index = root / "index.tsv"

    def pages_done(self) -> set[str]:
        return {sample.page for sample in self.samples()}

    def samples(self) -> list[LineSample]:
        if not self.index.is_file():
            return []
        with self.index.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
            return [LineSample(**row) for row in reader]

    def add_page(
        self, page: GtPage, collection: str, page_id: str, language: str = ""
    ) -> list[LineSample]:
        return self.add_crops(list(crop_lines(page)), collection, page_id, language)

    def add_crops(
        self, crops: list[tuple[np.ndarray, str, str]], collection: str, page_id: str, language: str
    ) -> list[LineSample]:
        """Store one page's crops (as `crop_lines` yields them), named after the page."""
        digest = hashlib.sha1(page_id.encode()).hexdigest()[:16]
        folder = self.root / "lines" / digest[:2]
        folder.mkdir(parents=True, exist_ok=True)
        added = []
        for number, (pixels, text, kind) in enumerate(crops):
            name = f"lines/{digest[:2]}/{digest}-{number:04d}.png"
            Image.fromarray(pixels).save(self.root / name, compress_level=3)
            added.append(LineSample(name, text, collection, page_id, language, kind))
        self._append(added)
        return added

    def _append(self, samples: Iterable[LineSample]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        new = not self.index.is_file()
        with self.index.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
            if new:
                writer.writerow(INDEX_FIELDS)
            for s in samples:
                row = [s.file, s.text.replace("\t", " "), s.collection, s.page, s.language, s.kind]
                writer.writerow(row)

    def load(self, sample: LineSample) -> np.ndarray:
        with Image.open(self.root / sample.file) as image:
            return np.asarray(image.convert("L"), dtype=np.uint8)
