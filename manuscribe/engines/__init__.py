"""OCR engines behind one interface; `create_engine(name, settings)` picks one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from manuscribe.engines.base import EngineError, Hints, OcrEngine, PageResult

if TYPE_CHECKING:
    from manuscribe.settings import Settings

ENGINES = ("rapidocr", "tesseract", "aspose-cloud")


def create_engine(name: str, settings: Settings) -> OcrEngine:
    """Build the named engine; imports are lazy so an unused engine's package is optional."""
    if name == "rapidocr":
        from manuscribe.engines.rapidocr_engine import RapidOcrEngine

        return RapidOcrEngine(threads=settings.effective_threads)
    if name == "tesseract":
        from manuscribe.engines.tesseract_engine import TESSERACT_LANGS, TesseractEngine

        # a --lang hint narrows tesseract to that language's model
        return TesseractEngine(
            lang=TESSERACT_LANGS.get(settings.lang or "", settings.tesseract_lang)
        )
    if name == "aspose-cloud":
        from manuscribe.engines.aspose_cloud import AsposeCloudEngine

        return AsposeCloudEngine.from_settings(settings)
    raise EngineError(f"unknown OCR engine {name!r}; choose one of: {', '.join(ENGINES)}")


__all__ = ["ENGINES", "EngineError", "Hints", "OcrEngine", "PageResult", "create_engine"]
