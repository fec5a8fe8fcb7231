"""Searchable PDF: page sizes, embedded scans, and an invisible text layer that extracts right."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pikepdf
import pypdfium2 as pdfium
import pytest
from lxml import etree

from manuscribe.model import Page
from manuscribe.renderers import RenderContext, get_renderer
from tests.render_fixtures import (
    DPI,
    document,
    failed_page,
    french_document,
    french_page,
    image_source,
    japanese_document,
    mixed_document,
    two_column_page,
    with_outlines,
)
from tests.requires import require_tool


def render_pdf(doc, tmp_path: Path, *, images: bool = True) -> Path:
    context = RenderContext(page_image=image_source(doc) if images else None)
    path = tmp_path / "out.pdf"
    path.write_bytes(get_renderer("pdf").render(doc, context))
    return path


def pdftotext(path: Path, *args: str) -> str:
    exe = require_tool("pdftotext", "apt-get install poppler-utils (or make install-test)")
    result = subprocess.run(
        [exe, "-enc", "UTF-8", *args, str(path), "-"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return result.stdout.decode()


def page_lines(text: str) -> list[list[str]]:
    """pdftotext output -> non-empty lines of each page."""
    pages = text.split("\f")
    if pages and not pages[-1].strip():
        pages = pages[:-1]
    return [[ln.strip() for ln in page.splitlines() if ln.strip()] for page in pages]


def expected_lines(page: Page) -> list[str]:
    return [ln for ln in page.text.split("\n") if ln.strip()]


def test_text_layer_extracts_the_corrected_text_with_accents(tmp_path: Path) -> None:
    doc = french_document()
    lines = page_lines(pdftotext(render_pdf(doc, tmp_path)))
    assert lines == [expected_lines(doc.pages[0])]
    assert lines[0][0] == "Le château de Versailles"  # the correction, not the OCR
    assert "à Noël, cœur léger — Zoë." in lines[0]


def test_japanese_text_round_trips(tmp_path: Path) -> None:
    lines = page_lines(pdftotext(render_pdf(japanese_document(), tmp_path)))
    assert lines == [["東京の古文書を読む", "明治三年 手紙"]]


def test_pages_sizes_and_edge_pages(tmp_path: Path) -> None:
    doc = mixed_document()
    path = render_pdf(doc, tmp_path)
    with pikepdf.open(path) as pdf:
        assert len(pdf.pages) == 4
        for page, pdf_page in zip(doc.pages, pdf.pages, strict=True):
            box = [float(v) for v in pdf_page.mediabox]
            assert box == pytest.approx([0, 0, page.width * 72 / DPI, page.height * 72 / DPI])
            images = list(pdf_page.Resources.XObject.values())
            assert len(images) == 1  # every page keeps its scan, text or not
            assert (int(images[0].Width), int(images[0].Height)) == (page.width, page.height)
    pages = page_lines(pdftotext(path))
    assert len(pages) == 4
    assert pages[0] == expected_lines(doc.pages[0])
    assert pages[1] == [] and pages[2] == []  # empty page, page whose block has no text
    assert pages[3] == ["東京の古文書を読む", "明治三年 手紙"]


def test_page_size_follows_dpi(tmp_path: Path) -> None:
    doc = french_document()
    page = doc.pages[0]
    page.dpi, page.width, page.height = 300, 2480, 3508
    with pikepdf.open(render_pdf(doc, tmp_path)) as pdf:
        box = [float(v) for v in pdf.pages[0].mediabox]
    assert box == pytest.approx([0, 0, 595.2, 841.92])  # A4 in points


@pytest.mark.parametrize("outlines", [False, True], ids=["boxes", "with-polygons"])
def test_invisible_lines_sit_on_their_boxes(outlines: bool, tmp_path: Path) -> None:
    # A line's baseline and polygon change nothing here: its run spans its box.
    page = two_column_page(1)
    doc = document([with_outlines(page) if outlines else page])
    path = render_pdf(doc, tmp_path)
    html = pdftotext(path, "-bbox-layout")
    root = etree.fromstring(re.sub(r"<!DOCTYPE[^>]*>", "", html).encode())
    found = {}
    for line in root.iter("{http://www.w3.org/1999/xhtml}line"):
        text = " ".join(w.text for w in line)
        found[text] = [float(line.get(k)) for k in ("xMin", "yMin", "xMax", "yMax")]
    scale = 72 / DPI
    for block in doc.pages[0].blocks:
        for ln in block.lines:
            x0, y0, x1, y1 = (v * scale for v in ln.bbox)
            found_x0, found_y0, found_x1, found_y1 = found[ln.text]
            assert (found_x0, found_x1) == pytest.approx((x0, x1), abs=0.5)  # spans the box
            # Centred on the box, and shorter than it (keeps handwriting's overlapping lines apart).
            assert (found_y0 + found_y1) / 2 == pytest.approx((y0 + y1) / 2, abs=0.5)
            assert 0.3 * (y1 - y0) < found_y1 - found_y0 <= (y1 - y0) + 0.5
    # The text layer is written in the document's reading order: column by column. (Plain
    # pdftotext re-orders by its own layout analysis; -raw keeps the PDF's order.)
    assert page_lines(pdftotext(path, "-raw")) == [expected_lines(doc.pages[0])]
    assert sorted(page_lines(pdftotext(path))[0]) == sorted(expected_lines(doc.pages[0]))


def test_scan_is_visible_and_text_is_not(tmp_path: Path) -> None:
    doc = french_document()
    line = doc.pages[0].blocks[0].lines[0].bbox
    scale = 72 / DPI
    centre = ((line[0] + line[2]) / 2 * scale, (line[1] + line[3]) / 2 * scale)
    for images, expected in ((True, 90), (False, 255)):
        pdf = pdfium.PdfDocument(render_pdf(doc, tmp_path, images=images))
        bitmap = pdf[0].render(scale=1).to_pil().convert("L")
        assert bitmap.getpixel((10, 10)) >= 250  # paper
        assert bitmap.getpixel(centre) == pytest.approx(expected, abs=12)  # ink, or no ink
        pdf.close()


def test_without_page_images_the_text_layer_still_works(tmp_path: Path) -> None:
    doc = french_document()
    path = render_pdf(doc, tmp_path, images=False)
    assert page_lines(pdftotext(path)) == [expected_lines(doc.pages[0])]
    with pikepdf.open(path) as pdf:
        assert "/XObject" not in pdf.pages[0].Resources
        check = getattr(pdf, "check_pdf_syntax", None) or pdf.check  # renamed in pikepdf 10
        assert check() == []  # qpdf finds nothing wrong with the file


def test_characters_outside_the_basic_plane(tmp_path: Path) -> None:
    doc = japanese_document()
    line = doc.pages[0].blocks[0].lines[0]
    line.text = "𠮷野家 と 🍣"
    doc.pages[0].blocks[0].text = "\n".join(ln.text for ln in doc.pages[0].blocks[0].lines)
    assert page_lines(pdftotext(render_pdf(doc, tmp_path)))[0][0] == "𠮷野家 と 🍣"


def test_failed_page_becomes_a_blank_page(tmp_path: Path) -> None:
    doc = document([french_page(1), failed_page(2)])
    path = render_pdf(doc, tmp_path)  # the failed page's scan raises: no image, no error
    with pikepdf.open(path) as pdf:
        assert len(pdf.pages) == 2
        assert [float(v) for v in pdf.pages[1].mediabox] == pytest.approx([0, 0, 595.28, 841.89])
    assert page_lines(pdftotext(path)) == [expected_lines(doc.pages[0]), []]


def test_words_survive_strong_stretching_and_squeezing(tmp_path: Path) -> None:
    page = french_page(1)
    block = page.blocks[1]
    block.lines[0].text, block.lines[0].bbox = "A M", (100, 420, 1100, 480)  # stretched
    block.lines[1].text = "un très long texte serré dans une boîte étroite"
    block.lines[1].bbox = (100, 500, 400, 560)  # squeezed
    block.text = "\n".join(ln.text for ln in block.lines)
    path = render_pdf(document([page]), tmp_path)
    for mode in ([], ["-raw"]):
        lines = page_lines(pdftotext(path, *mode))[0]
        assert "A M" in lines
        assert "un très long texte serré dans une boîte étroite" in lines
