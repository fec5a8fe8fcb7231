"""Documents built in code for the renderer tests: accents, Japanese, corrections, edge cases."""

from __future__ import annotations

from PIL import Image, ImageDraw

from manuscribe.model import BBox, Block, Correction, Document, Line, Page, StageInfo, Word

DPI = 150
A4 = (1240, 1754)  # A4 at 150 dpi, in pixels

ENGINE = StageInfo(name="rapidocr", version="3.4.2", fingerprint="e1f2", settings={"det": "db"})
CORRECTOR = StageInfo(
    name="transformers", version="5.0.0", fingerprint="c0ff", settings={"model": "tiny-fr"}
)


def make_line(text: str, bbox: BBox, *, words: bool, confidence: float = 0.9) -> Line:
    """A line; with `words`, one Word per space-separated token, boxes split by characters."""
    word_list = []
    if words and text:
        x0, y0, x1, y1 = bbox
        per_char = (x1 - x0) / len(text)
        position = 0
        for n, token in enumerate(text.split(" ")):
            start = text.index(token, position)
            end = start + len(token)
            position = end
            left, right = x0 + round(start * per_char), x0 + round(end * per_char)
            word_list.append(Word(bbox=(left, y0, right, y1), text=token, confidence=0.8 + n / 100))
    return Line(bbox=bbox, text=text, confidence=confidence, words=word_list)


def make_block(
    block_id: str,
    lines: list[Line],
    *,
    language: str = "fr",
    corrected: str | None = None,
) -> Block:
    boxes = [ln.bbox for ln in lines] or [(0, 0, 0, 0)]
    bbox = (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
    correction = None
    if corrected is not None:
        correction = Correction(text=corrected, status="applied", model="tiny-fr")
    return Block(
        id=block_id,
        bbox=bbox,
        lines=lines,
        text="\n".join(ln.text for ln in lines),
        confidence=0.87,
        language=language,
        language_confidence=0.99,
        correction=correction,
    )


def french_page(number: int = 1) -> Page:
    """A letter: a corrected block with words, then an uncorrected block without words."""
    corrected = make_block(
        f"p{number}-b1",
        [
            make_line("Le chateau de Versailes", (120, 200, 900, 260), words=True),
            make_line("était magnifique en été.", (120, 280, 940, 340), words=True),
        ],
        corrected="Le château de Versailles\nétait magnifique en été.",
    )
    plain = make_block(
        f"p{number}-b2",
        [
            make_line("Reçu la somme de quinze francs,", (120, 420, 1000, 480), words=False),
            make_line("à Noël, cœur léger — Zoë.", (120, 500, 900, 560), words=False),
        ],
    )
    plain.correction = Correction(status="rejected", reason="changed too much")
    return Page(number=number, width=A4[0], height=A4[1], dpi=DPI, blocks=[corrected, plain])


def japanese_page(number: int = 1) -> Page:
    block = make_block(
        f"p{number}-b1",
        [
            make_line("東京の古文書を読む", (100, 150, 820, 230), words=False),
            make_line("明治三年 手紙", (100, 260, 640, 340), words=True),
        ],
        language="ja",
    )
    return Page(number=number, width=A4[0], height=A4[1], dpi=DPI, blocks=[block])


def empty_page(number: int) -> Page:
    """A page on which nothing was found."""
    return Page(number=number, width=A4[0], height=A4[1], dpi=DPI, blocks=[])


def blank_text_page(number: int) -> Page:
    """A page with a block whose lines carry no text (e.g. a drawing the detector boxed)."""
    block = make_block(
        f"p{number}-b1", [make_line("", (200, 200, 600, 260), words=False)], language="und"
    )
    block.confidence = 0.0
    return Page(number=number, width=A4[0], height=A4[1], dpi=DPI, blocks=[block])


def failed_page(number: int) -> Page:
    """A page the pipeline could not recognise: no size, an error, no scan to be had."""
    return Page(number=number, width=0, height=0, dpi=DPI, error="could not rasterise")


def two_column_page(number: int = 1) -> Page:
    """Title across the page, then two columns; blocks already in reading order."""
    title = make_block(
        f"p{number}-b1", [make_line("Journal de bord", (300, 80, 940, 150), words=True)]
    )
    left = make_block(
        f"p{number}-b2",
        [
            make_line("colonne gauche un", (80, 250, 560, 300), words=True),
            make_line("colonne gauche deux", (80, 320, 580, 370), words=True),
        ],
    )
    right = make_block(
        f"p{number}-b3",
        [
            make_line("colonne droite un", (680, 250, 1160, 300), words=True),
            make_line("colonne droite deux", (680, 320, 1150, 370), words=True),
        ],
    )
    return Page(number=number, width=A4[0], height=A4[1], dpi=DPI, blocks=[title, left, right])


def outline(bbox: BBox) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(baseline, polygon) a baseline segmenter (kraken) might give for a line: a baseline that
    sags in the middle, and a slanted six-point outline whose bounding box is `bbox`."""
    x0, y0, x1, y1 = bbox
    mid, height = (x0 + x1) // 2, y1 - y0
    baseline = [(x0 + 2, y0 + height * 3 // 4), (mid, y0 + height * 4 // 5), (x1 - 2, y1 - 10)]
    polygon = [(x0, y0 + 6), (mid, y0), (x1, y0 + 4), (x1, y1), (mid, y1 - 3), (x0, y1 - 6)]
    return baseline, polygon


def with_outlines(page: Page) -> Page:
    """`page` with a baseline and a polygon on every line (their boxes unchanged)."""
    for block in page.blocks:
        for line in block.lines:
            line.baseline, line.polygon = outline(line.bbox)
    return page


def document(pages: list[Page], *, name: str = "lettre.pdf", corrected: bool = True) -> Document:
    return Document(
        id="9f" * 32,
        name=name,
        source=f"/archive/{name}",
        media_type="application/pdf" if name.endswith(".pdf") else "image/png",
        pages=pages,
        engine=ENGINE,
        corrector=CORRECTOR if corrected else None,
        manuscribe_version="0.1.0",
    )


def french_document() -> Document:
    return document([french_page(1)])


def japanese_document() -> Document:
    return document([japanese_page(1)], name="tegami.png", corrected=False)


def mixed_document() -> Document:
    """Four pages: French letter, empty page, page with textless block, Japanese."""
    return document([french_page(1), empty_page(2), blank_text_page(3), japanese_page(4)])


def page_image(page: Page) -> Image.Image:
    """A stand-in scan: white paper with a grey bar where each line is."""
    image = Image.new("RGB", (page.width, page.height), "white")
    draw = ImageDraw.Draw(image)
    for block in page.blocks:
        for line in block.lines:
            draw.rectangle(line.bbox, fill=(90, 90, 90))
    return image


def image_source(doc: Document):
    """A RenderContext.page_image for `doc` (rasterises the stand-in scans)."""
    pages = {p.number: p for p in doc.pages}

    def rasterise(number: int) -> Image.Image:
        if pages[number].error:
            raise RuntimeError(pages[number].error)
        return page_image(pages[number])

    return rasterise
