"""The OCR engine seam: one implementation per file, chosen by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

from manuscribe.model import Line


@dataclass
class Hints:
    """What the pipeline knows about a page before recognising it."""

    language: str | None = None  # ISO 639-1 hint from --lang
    dpi: int = 300


@dataclass
class PageResult:
    """Raw recognition of one page: lines, and blocks when the engine finds them itself.

    `blocks` holds groups of indexes into `lines`; when it is empty the pipeline groups lines
    into blocks itself (manuscribe.layout).
    """

    lines: list[Line]
    blocks: list[list[int]] = field(default_factory=list)
    languages: dict[int, str] = field(default_factory=dict)  # block index -> ISO 639-1, if known


class OcrEngine(Protocol):
    name: str
    version: str

    def recognize(self, image: Image.Image, hints: Hints) -> PageResult: ...

    def settings(self) -> dict:
        """The settings that change the engine's output (they go into the fingerprint)."""
        ...

    def close(self) -> None: ...


class EngineError(RuntimeError):
    """An engine cannot start (missing package, model or credentials): fatal for the run."""
