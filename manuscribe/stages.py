"""The pipeline's stage functions, shared by the embedded runner and the Celery tasks.

Each takes plain inputs and returns model objects; none of them knows about threads, queues or
where results are stored. Fingerprints computed here key the caches in both modes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from PIL import Image

from manuscribe import __version__
from manuscribe.correctors.base import BlockInput, Corrector
from manuscribe.engines.base import Hints, OcrEngine, PageResult
from manuscribe.fingerprint import fingerprint
from manuscribe.inputs import SourceInfo
from manuscribe.language import identify_page
from manuscribe.layout import LAYOUT_VERSION, build_blocks, group_lines
from manuscribe.model import Document, Page, StageInfo
from manuscribe.preprocess import preprocess
from manuscribe.renderers import FOLDER_FORMATS, RenderContext, get_renderer
from manuscribe.settings import Settings

log = logging.getLogger(__name__)


def engine_info(engine: OcrEngine, settings: Settings) -> StageInfo:
    """The OCR stage's identity: engine, its version and every setting that changes its output."""
    options = {
        "engine": engine.settings(),
        "dpi": settings.dpi,
        "preprocess": settings.preprocess,
        "preprocess_below": settings.preprocess_below,
        "lang": settings.lang,
        "languages": settings.languages,
        "layout": LAYOUT_VERSION,
    }
    return StageInfo(
        name=engine.name,
        version=engine.version,
        fingerprint=fingerprint("ocr", engine.name, engine.version, options),
        settings=options,
    )


def corrector_info(corrector: Corrector, ocr: StageInfo) -> StageInfo:
    """The correction stage's identity; it includes the OCR fingerprint it corrected."""
    options = corrector.settings()
    version = str(options.get("revision") or options.get("version") or "")
    return StageInfo(
        name=corrector.name,
        version=version,
        fingerprint=fingerprint(
            "correct", ocr.fingerprint, corrector.name, corrector.model, options
        ),
        settings={"model": corrector.model, **options},
    )


def page_confidence(page: Page) -> float:
    """Mean line confidence weighted by text length (0 for a page with no text)."""
    total = weight = 0.0
    for block in page.blocks:
        for line in block.lines:
            total += line.confidence * len(line.text)
            weight += len(line.text)
    return round(total / weight, 4) if weight else 0.0


def _to_page(result: PageResult, number: int, image: Image.Image, dpi: int) -> Page:
    groups = result.blocks or group_lines(result.lines)
    page = Page(number=number, width=image.width, height=image.height, dpi=dpi)
    page.blocks = build_blocks(result.lines, groups, number, image.width)
    page.confidence = page_confidence(page)
    return page


def recognise_page(
    image: Image.Image, number: int, dpi: int, engine: OcrEngine, settings: Settings
) -> Page:
    """Image -> Page with blocks, lines, confidences and a language per block.

    With preprocess=auto a page that reads with low confidence is cleaned up and read again; the
    cleaned reading is kept only if its confidence is higher.
    """
    hints = Hints(language=settings.lang, dpi=dpi)
    page = None
    if settings.preprocess != "always":
        page = _to_page(engine.recognize(image, hints), number, image, dpi)
    # a remote engine bills per call, and its confidences are not ours to threshold
    wants_retry = (
        settings.preprocess == "auto"
        and page.confidence < settings.preprocess_below
        and not getattr(engine, "remote", False)
    )
    if settings.preprocess == "always" or wants_retry:
        cleaned, steps = preprocess(image)
        retry = _to_page(engine.recognize(cleaned, hints), number, cleaned, dpi)
        retry.preprocessing = steps
        if page is None or retry.confidence > page.confidence:
            page = retry
    identify_page(page, settings.languages, settings.lang)
    return page


def correct_pages(pages: Iterable[Page], corrector: Corrector) -> list[Page]:
    """Correct every block of `pages` in one call, so the corrector can batch across pages.

    Returns corrected copies; the OCR text of each block is kept as it was.
    """
    copies = [page.model_copy(deep=True) for page in pages]
    blocks = [block for page in copies for block in page.blocks]
    if not blocks:
        return copies
    inputs = [BlockInput(b.text, b.language, b.confidence) for b in blocks]
    corrections = corrector.correct(inputs)
    if len(corrections) != len(blocks):
        raise RuntimeError(
            f"corrector {corrector.name} gave {len(corrections)} results for {len(blocks)} blocks"
        )
    for block, correction in zip(blocks, corrections, strict=True):
        block.correction = correction
    return copies


def assemble_document(
    info: SourceInfo, pages: list[Page], ocr: StageInfo, correction: StageInfo | None
) -> Document:
    return Document(
        id=info.sha256,
        name=info.name,
        source=info.path.name,
        media_type=info.media_type,
        pages=sorted(pages, key=lambda p: p.number),
        engine=ocr,
        corrector=correction,
        manuscribe_version=__version__,
    )


def render_document(
    document: Document, formats: list[str], context: RenderContext | None = None
) -> dict[str, bytes]:
    """{extension: bytes} for each requested format."""
    context = context or RenderContext()
    outputs = {}
    for name in formats:
        if name in FOLDER_FORMATS:
            continue  # see report_files
        renderer = get_renderer(name)
        data = renderer.render(document, context)
        # PAGE XML holds one page per file: multi-page documents become a zip of PAGE files
        extension_for = getattr(renderer, "extension_for", None)
        outputs[extension_for(document) if extension_for else renderer.extension] = data
    return outputs


def report_files(
    document: Document, formats: list[str], context: RenderContext
) -> Iterator[tuple[str, bytes]]:
    """(key under the output root, bytes) of the folder formats (`html`), one file at a time."""
    for name in formats:
        if name in FOLDER_FORMATS:
            yield from get_renderer(name).files(document, context)
