"""The `none` corrector: every block is skipped, so outputs carry plain OCR text."""

from __future__ import annotations

from manuscribe.correctors.base import BlockInput
from manuscribe.model import Correction


class NoCorrector:
    name = "none"
    model = ""

    def correct(self, blocks: list[BlockInput]) -> list[Correction]:
        return [Correction(status="skipped", reason="correction disabled") for _ in blocks]

    def settings(self) -> dict:
        return {}

    def close(self) -> None:
        pass
