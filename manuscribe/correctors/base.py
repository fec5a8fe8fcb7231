"""The correction seam: blocks in, one Correction per block out, original text untouched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from manuscribe.model import Correction


@dataclass
class BlockInput:
    """What a corrector needs to know about one block."""

    text: str
    language: str = "und"
    confidence: float = 1.0


class Corrector(Protocol):
    name: str
    model: str

    def correct(self, blocks: list[BlockInput]) -> list[Correction]: ...

    def settings(self) -> dict:
        """Settings that change the output (model, revision, prompt, guards): fingerprinted."""
        ...

    def close(self) -> None: ...


class CorrectorError(RuntimeError):
    """A corrector cannot start (model missing, package missing): fatal, with a clear message."""
