"""OCR engines behind one interface; `create_engine(name, settings)` picks one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from manuscribe.engines.base import EngineError, Hints, OcrEngine, PageResult

if TYPE_CHECKING:
    from manuscribe.settings import Settings

ENGINES = ("rapidocr", "tesseract", "aspose-cloud", "kraken")


def create_engine(name: str, settings: Settings, storage=None) -> OcrEngine:
    """Build the named engine; imports are lazy so an unused engine's package is optional.
    `storage` lets a worker fetch an OCR model that a job names by storage key."""
    if name == "rapidocr":
        from manuscribe.engines import rec_models
        from manuscribe.engines.rapidocr_engine import RapidOcrEngine

        model = rec_models.resolve(settings.ocr_model, storage, rec_models_cache(settings))
        return RapidOcrEngine(
            threads=settings.effective_threads,
            rec_model=model,
            second_opinion=settings.ocr_second_opinion,
            second_opinion_margin=settings.ocr_second_opinion_margin,
            languages=settings.languages,
            language_model=settings.ocr_language_model,
            detector=detector_settings(settings),
        )
    if name == "tesseract":
        from manuscribe.engines.tesseract_engine import TESSERACT_LANGS, TesseractEngine

        # a --lang hint narrows tesseract to that language's model
        return TesseractEngine(
            lang=TESSERACT_LANGS.get(settings.lang or "", settings.tesseract_lang)
        )
    if name == "aspose-cloud":
        from manuscribe.engines.aspose_cloud import AsposeCloudEngine

        return AsposeCloudEngine.from_settings(settings)
    if name == "kraken":
        return _kraken_engine(settings, storage)
    raise EngineError(f"unknown OCR engine {name!r}; choose one of: {', '.join(ENGINES)}")


def _kraken_engine(settings: Settings, storage) -> OcrEngine:
    """kraken segmentation; a kraken recogniser when `ocr_model` names one, else the project's
    recogniser (through rapidocr) reads kraken's line images."""
    from manuscribe.engines import rec_models
    from manuscribe.engines.kraken_engine import KrakenEngine, is_kraken_model, resolve_model
    from manuscribe.engines.rapidocr_engine import RapidOcrEngine

    cache = rec_models_cache(settings)
    seg = resolve_model(settings.seg_model, storage, cache) if settings.seg_model else None
    rec = reader = None
    if is_kraken_model(settings.ocr_model):
        rec = resolve_model(settings.ocr_model, storage, cache)
    else:
        model = rec_models.resolve(settings.ocr_model, storage, cache)
        reader = RapidOcrEngine(
            threads=settings.effective_threads,
            rec_model=model,
            second_opinion=settings.ocr_second_opinion,
            second_opinion_margin=settings.ocr_second_opinion_margin,
            languages=settings.languages,
            language_model=settings.ocr_language_model,
            detector=detector_settings(settings),
        )
    return KrakenEngine(
        seg_model=seg,
        rec_model=rec,
        reader=reader,
        threads=settings.effective_threads,
        device=settings.kraken_device,
        page_heights=tuple(settings.seg_page_heights),
    )


def detector_settings(settings: Settings) -> dict:
    """rapidocr's line-detector parameters from the settings (see RapidOcrEngine)."""
    return {
        "box_thresh": settings.ocr_det_box_thresh,
        "unclip_ratio": settings.ocr_det_unclip_ratio,
    }


def rec_models_cache(settings: Settings):
    from manuscribe.settings import cache_root

    return cache_root(getattr(settings, "cache_dir", "")) / "models"


__all__ = ["ENGINES", "EngineError", "Hints", "OcrEngine", "PageResult", "create_engine"]
