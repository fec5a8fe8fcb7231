"""The document model every stage reads and writes (versioned, JSON-serialisable).

Document -> Page -> Block -> Line. Coordinates are page pixels at the page's `dpi`.
The original OCR text is never overwritten: correction lives beside it in `Block.correction`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

SCHEMA_VERSION = "1.0"

BBox = tuple[int, int, int, int]  # x0, y0, x1, y1 in page pixels
Point = tuple[int, int]  # x, y in page pixels, the same space as BBox


class Word(BaseModel):
    bbox: BBox
    text: str
    confidence: float


class Line(BaseModel):
    """One text line. `baseline` and `polygon` are set by engines that segment by baseline
    (kraken); others leave them empty. When set, `bbox` should be the polygon's bounding box.

    They are kept as the engine gave them: renderers clip them to the page and leave out a
    baseline of fewer than 2 distinct points and a polygon of fewer than 3 (or with no area).
    """

    bbox: BBox
    text: str
    confidence: float
    words: list[Word] = Field(default_factory=list)
    baseline: list[Point] = Field(default_factory=list)  # polyline the letters sit on
    polygon: list[Point] = Field(default_factory=list)  # outline, closed by convention


class Correction(BaseModel):
    """What the corrector did with one block; `text` is set only when the status is `applied`."""

    text: str | None = None
    status: Literal["applied", "rejected", "skipped"]
    reason: str = ""
    model: str = ""


class Block(BaseModel):
    id: str
    bbox: BBox
    lines: list[Line]
    text: str
    confidence: float
    language: str = "und"
    language_confidence: float = 0.0
    correction: Correction | None = None

    @property
    def best_text(self) -> str:
        """Corrected text when a correction was applied, else the OCR text."""
        if self.correction and self.correction.status == "applied" and self.correction.text:
            return self.correction.text
        return self.text


class Page(BaseModel):
    number: int  # 1-based
    width: int
    height: int
    dpi: int
    blocks: list[Block] = Field(default_factory=list)
    confidence: float = 0.0
    preprocessing: list[str] = Field(default_factory=list)
    error: str | None = None

    @property
    def text(self) -> str:
        return "\n\n".join(b.best_text for b in self.blocks)


class StageInfo(BaseModel):
    """Who produced a stage's output: enough to reproduce it and to key caches on it."""

    name: str
    version: str
    fingerprint: str
    settings: dict = Field(default_factory=dict)


class Document(BaseModel):
    schema_version: str = SCHEMA_VERSION
    id: str  # sha256 of the source bytes
    name: str
    source: str
    media_type: str
    pages: list[Page]
    engine: StageInfo
    corrector: StageInfo | None = None
    manuscribe_version: str = ""

    @property
    def failed_pages(self) -> list[Page]:
        return [p for p in self.pages if p.error]


class Failure(BaseModel):
    """One failed document or page, as written to `jobs/<job>/failures/`."""

    source: str
    name: str
    page: int | None = None
    stage: str
    error: str
    tries: int = 1
