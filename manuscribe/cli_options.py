"""Command-line options shared by `run` (embedded) and `submit` (distributed).

Both take the same pipeline settings, so the flags, their help and how they become a Settings
object are defined once here.
"""

from __future__ import annotations

from typing import Annotated

import typer

from manuscribe.renderers import parse_formats
from manuscribe.settings import Settings, load_settings

Engine = Annotated[str | None, typer.Option(help="rapidocr | tesseract | aspose-cloud | kraken")]
Corrector = Annotated[
    str | None, typer.Option(help="auto | none | transformers | llamacpp | openai")
]
OcrModel = Annotated[
    str | None,
    typer.Option(
        "--ocr-model",
        help="Line recogniser: default | ppocr | PATH.onnx (from manuscribe train); with "
        "--engine kraken also a kraken model: PATH.mlmodel | PATH.safetensors | doi:DOI.",
    ),
]
OcrLm = Annotated[
    bool | None,
    typer.Option(
        "--ocr-lm/--no-ocr-lm",
        help="Decode lines with the character language model the recogniser carries (beam "
        "search); --no-ocr-lm reads greedily. Default: on (setting ocr_language_model).",
    ),
]
SegModel = Annotated[
    str | None,
    typer.Option(
        "--seg-model",
        help="kraken's segmentation model (--engine kraken): PATH; default: the bundled blla.",
    ),
]
Model = Annotated[str | None, typer.Option(help="Corrector model id or local path.")]
Lang = Annotated[str | None, typer.Option(help="Language hint (ISO 639-1, e.g. fr).")]
Dpi = Annotated[int | None, typer.Option(help="Rasterisation DPI for PDF pages.")]
Formats = Annotated[str | None, typer.Option(help="Comma list: json,txt,alto,page,hocr,pdf,html")]
Preprocess = Annotated[str | None, typer.Option(help="auto | always | never")]


def settings_from_flags(formats: str | None = None, **flags) -> Settings:
    """Settings with the given flags over env and config; raises ValueError on a bad value."""
    return load_settings(formats=parse_formats(formats) if formats else None, **flags)
