"""Searchable PDF: each page image with an invisible text layer (render mode 3) on its lines.

Page size in points is pixels * 72 / dpi. Each line's main text (corrected when a correction
was applied) is one text run centred on the line box (less tall than the box, see PITCH_FRACTION)
and stretched horizontally (Tz) to span its width, so selecting and searching in a reader line
up with the handwriting and `pdftotext` gives the corrected text back.

The text uses a "glyphless" font built here: a TrueType font whose only glyph is blank, shown
for every character. Characters are numbered per document (CIDs 1..n) and a ToUnicode CMap maps
each back to its Unicode text, so any script (accents, Japanese, ...) extracts correctly without
shipping a real font. PDFs are written with pikepdf; the font is made with fontTools.
"""

from __future__ import annotations

import io
import zlib
from functools import lru_cache

import pikepdf
from PIL import Image

from manuscribe.model import BBox, Document, Page
from manuscribe.renderers.base import RenderContext
from manuscribe.renderers.common import line_texts

GLYPH_WIDTH = 500  # advance of the blank glyph, in 1/1000 em
ASCENT, DESCENT = 800, -200  # the em box, so a run of size h fills a box of height h
FONT_NAME = "ManuscribeGlyphless"
# Handwritten line boxes are tall and overlap their neighbours (ascenders, descenders, slant).
# Text as tall as the box makes text extraction (poppler's pdftotext) mix up the lines and break
# them at every space. Text centred on the box, PITCH_FRACTION of the line pitch tall, keeps the
# lines apart; spaces of a fixed SPACE_EM keep words apart without splitting a line into columns.
# Measured on 16 pages of ../shared/datasets/handwriting: pdftotext returns 318 of 324 lines
# intact (the others overlap a neighbour on the same row); with text as tall as the box, 252.
PITCH_FRACTION = 0.4
SPACE_EM = 0.6


@lru_cache(maxsize=1)
def glyphless_font() -> bytes:
    """A TrueType font with .notdef and one blank glyph, both GLYPH_WIDTH wide."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder([".notdef", "blank"])
    builder.setupCharacterMap({0x20: "blank"})
    builder.setupGlyf({".notdef": TTGlyphPen(None).glyph(), "blank": TTGlyphPen(None).glyph()})
    builder.setupHorizontalMetrics({".notdef": (GLYPH_WIDTH, 0), "blank": (GLYPH_WIDTH, 0)})
    builder.setupHorizontalHeader(ascent=ASCENT, descent=DESCENT)
    builder.setupNameTable({"familyName": FONT_NAME, "styleName": "Regular"})
    builder.setupOS2(
        sTypoAscender=ASCENT, sTypoDescender=DESCENT, usWinAscent=ASCENT, usWinDescent=-DESCENT
    )
    builder.setupPost()
    buffer = io.BytesIO()
    builder.save(buffer)
    return buffer.getvalue()


def _to_unicode(chars: list[str]) -> bytes:
    """A ToUnicode CMap mapping CID i+1 to chars[i] (UTF-16BE, surrogate pairs included)."""
    out = [
        "/CIDInit /ProcSet findresource begin",
        "12 dict begin",
        "begincmap",
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        "/CMapName /Adobe-Identity-UCS def",
        "/CMapType 2 def",
        "1 begincodespacerange",
        "<0000> <FFFF>",
        "endcodespacerange",
    ]
    for start in range(0, len(chars), 100):  # at most 100 entries per bfchar section
        chunk = chars[start : start + 100]
        out.append(f"{len(chunk)} beginbfchar")
        for offset, char in enumerate(chunk):
            out.append(f"<{start + offset + 1:04X}> <{char.encode('utf-16-be').hex().upper()}>")
        out.append("endbfchar")
    out += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
    return "\n".join(out).encode("ascii")


def _font(pdf: pikepdf.Pdf, chars: list[str]) -> pikepdf.Object:
    """The Type0 font dictionary for this document's characters."""
    descriptor = pikepdf.Dictionary(
        Type=pikepdf.Name.FontDescriptor,
        FontName=pikepdf.Name("/" + FONT_NAME),
        Flags=5,  # fixed pitch, symbolic
        FontBBox=[0, DESCENT, GLYPH_WIDTH, ASCENT],
        ItalicAngle=0,
        Ascent=ASCENT,
        Descent=DESCENT,
        CapHeight=ASCENT,
        StemV=80,
        FontFile2=pikepdf.Stream(pdf, glyphless_font()),
    )
    # Every CID shows glyph 1 (the blank one); CID 0 stays .notdef.
    cid_to_gid = b"\x00\x00" + b"\x00\x01" * len(chars)
    cid_font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font,
        Subtype=pikepdf.Name.CIDFontType2,
        BaseFont=pikepdf.Name("/" + FONT_NAME),
        CIDSystemInfo=pikepdf.Dictionary(Registry="Adobe", Ordering="Identity", Supplement=0),
        FontDescriptor=pdf.make_indirect(descriptor),
        DW=GLYPH_WIDTH,
        CIDToGIDMap=pdf.make_indirect(_flate(pdf, cid_to_gid)),
    )
    font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font,
        Subtype=pikepdf.Name.Type0,
        BaseFont=pikepdf.Name("/" + FONT_NAME),
        Encoding=pikepdf.Name("/Identity-H"),
        DescendantFonts=[pdf.make_indirect(cid_font)],
        ToUnicode=pdf.make_indirect(_flate(pdf, _to_unicode(chars))),
    )
    return pdf.make_indirect(font)


def _flate(pdf: pikepdf.Pdf, data: bytes) -> pikepdf.Stream:
    stream = pikepdf.Stream(pdf, zlib.compress(data))
    stream.Filter = pikepdf.Name.FlateDecode
    return stream


def _image(pdf: pikepdf.Pdf, image: Image.Image, quality: int) -> pikepdf.Stream:
    """The page image as a JPEG XObject (grayscale stays grayscale)."""
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, optimize=True)
    stream = pikepdf.Stream(pdf, buffer.getvalue())
    stream.Type = pikepdf.Name.XObject
    stream.Subtype = pikepdf.Name.Image
    stream.Width, stream.Height = image.size
    stream.ColorSpace = pikepdf.Name.DeviceGray if image.mode == "L" else pikepdf.Name.DeviceRGB
    stream.BitsPerComponent = 8
    stream.Filter = pikepdf.Name.DCTDecode
    return stream


def _text_heights(runs: list[tuple[str, BBox]]) -> list[float]:
    """How tall each line's invisible text is, in pixels: PITCH_FRACTION of the distance to
    the nearest line above or below it (or of its own height when it has none), never more
    than its box."""
    heights = []
    for _, (x0, y0, x1, y1) in runs:
        centre, height = (y0 + y1) / 2, y1 - y0
        pitch = min(
            (
                abs((b[1] + b[3]) / 2 - centre)
                for _, b in runs
                if min(x1, b[2]) > max(x0, b[0])  # overlaps horizontally,
                and abs((b[1] + b[3]) / 2 - centre) > height / 4  # not beside it on its row
            ),
            default=height,
        )
        heights.append(min(height, pitch * PITCH_FRACTION))
    return heights


def _fit(text: str, width: float, size: float, cids: dict[str, int]) -> tuple[float, str]:
    """(Tz, TJ operation) that spread `text` over `width` points at font size `size`.

    Letters are stretched (Tz) to fill the width, but every space is kept SPACE_EM of the font
    size wide, whatever the stretch: pdftotext glues words together across a narrower gap and
    splits a line into columns at a wider one.
    """
    spaces = text.count(" ")
    letters = len(text) - spaces
    gap = SPACE_EM * size
    letters_width = width - spaces * gap
    if letters == 0 or letters_width < width / 2:  # mostly spaces, or no room: stretch evenly
        stretch = 100.0 * width / (len(text) * GLYPH_WIDTH / 1000 * size)
        return stretch, "<" + "".join(f"{cids[c]:04X}" for c in text) + "> Tj"
    scale = letters_width / (letters * GLYPH_WIDTH / 1000 * size)  # Tz / 100
    # A TJ number moves the pen back by n/1000 em (times Tz): turn the stretched space into gap.
    adjust = _num(GLYPH_WIDTH - 1000 * gap / (size * scale))
    parts = []
    for word in text.split(" "):
        parts.append("<" + "".join(f"{cids[c]:04X}" for c in word) + ">")
        parts.append(f"<{cids[' ']:04X}> {adjust}")
    return 100.0 * scale, "[" + " ".join(parts[:-1]) + "] TJ"


def _num(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


class SearchablePdfRenderer:
    format = "pdf"
    extension = "pdf"

    def __init__(self, jpeg_quality: int = 75) -> None:
        self.jpeg_quality = jpeg_quality

    def render(self, document: Document, context: RenderContext) -> bytes:
        runs_by_page = [self._runs(page) for page in document.pages]
        chars = sorted({c for runs in runs_by_page for run in runs for c in run[0]})
        cids = {char: n for n, char in enumerate(chars, start=1)}
        pdf = pikepdf.new()
        font = _font(pdf, chars) if chars else None
        for page, runs in zip(document.pages, runs_by_page, strict=True):
            self._page(pdf, page, self._scan(page, context), runs, font, cids)
        pdf.docinfo[pikepdf.Name.Title] = document.name
        pdf.docinfo[pikepdf.Name.Producer] = f"manuscribe {document.manuscribe_version}".strip()
        buffer = io.BytesIO()
        pdf.save(buffer, deterministic_id=True)
        return buffer.getvalue()

    @staticmethod
    def _scan(page: Page, context: RenderContext) -> Image.Image | None:
        if context.page_image is None:
            return None
        if not page.error:
            return context.page_image(page.number)
        try:  # a page that failed recognition may still rasterise; if not, it stays blank
            return context.page_image(page.number)
        except Exception:
            return None

    @staticmethod
    def _runs(page: Page) -> list[tuple[str, BBox]]:
        """(text, line box in pixels) for each non-empty line, in reading order."""
        runs = []
        for block in page.blocks:
            for line, text, _original in line_texts(block):
                text = " ".join(text.split())
                x0, y0, x1, y1 = line.bbox
                if text and x1 > x0 and y1 > y0:
                    runs.append((text, line.bbox))
        return runs

    def _page(self, pdf, page: Page, image, runs, font, cids: dict[str, int]) -> None:
        dpi = page.dpi if page.dpi > 0 else 72
        scale = 72.0 / dpi  # points per pixel
        if page.width > 0 and page.height > 0:
            width, height = page.width * scale, page.height * scale
        elif image is not None:
            width, height = image.width * scale, image.height * scale
        else:  # a failed page with neither size nor scan: a blank A4 page keeps the numbering
            width, height = 595.28, 841.89
        ops: list[str] = []
        resources = pikepdf.Dictionary()
        if image is not None:
            resources.XObject = pikepdf.Dictionary(Im0=_image(pdf, image, self.jpeg_quality))
            ops.append(f"q {_num(width)} 0 0 {_num(height)} 0 0 cm /Im0 Do Q")
        if runs and font is not None:
            resources.Font = pikepdf.Dictionary(F0=font)
            ops.append("BT 3 Tr")
            for (text, (x0, y0, x1, y1)), size_px in zip(runs, _text_heights(runs), strict=True):
                size = size_px * scale
                stretch, show = _fit(text, (x1 - x0) * scale, size, cids)
                middle = height - (y0 + y1) / 2 * scale
                baseline = middle - (ASCENT + DESCENT) / 2000 * size
                ops.append(
                    f"/F0 {_num(size)} Tf {_num(stretch)} Tz "
                    f"1 0 0 1 {_num(x0 * scale)} {_num(baseline)} Tm {show}"
                )
            ops.append("ET")
        pdf_page = pikepdf.Page(
            pikepdf.Dictionary(
                Type=pikepdf.Name.Page,
                MediaBox=[0, 0, float(_num(width)), float(_num(height))],
                Resources=resources,
                Contents=pikepdf.Stream(pdf, "\n".join(ops).encode("ascii")),
            )
        )
        pdf.pages.append(pdf_page)
