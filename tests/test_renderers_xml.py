"""ALTO, PAGE and hOCR: schema/spec validity and what the files carry."""

from __future__ import annotations

import io
import re
import zipfile
from functools import cache
from pathlib import Path

import pytest
from hocr_spec import HocrValidator
from lxml import etree

from manuscribe.renderers import RenderContext, get_renderer
from manuscribe.renderers.common import PAGE_LANGUAGE_NAMES, page_language
from tests.render_fixtures import (
    blank_text_page,
    document,
    empty_page,
    failed_page,
    french_document,
    french_page,
    japanese_document,
    mixed_document,
    two_column_page,
    with_outlines,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "shared" / "schemas"
ALTO = "{http://www.loc.gov/standards/alto/ns-v4#}"
PC = "{http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15}"
XHTML = "{http://www.w3.org/1999/xhtml}"

DOCUMENTS = {
    "french": french_document,
    "japanese": japanese_document,
    "mixed": mixed_document,
    "two-column": lambda: document([two_column_page(1)]),
    "empty": lambda: document([empty_page(1)]),
    "no-text": lambda: document([blank_text_page(1)], corrected=False),
    "failed-page": lambda: document([french_page(1), failed_page(2)]),
    "outlines": lambda: document([with_outlines(french_page(1)), failed_page(2)]),
}


@cache
def schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / name)))


def render(fmt: str, doc) -> bytes:
    return get_renderer(fmt).render(doc, RenderContext())


def page_files(doc) -> list[bytes]:
    """The PAGE file(s) of a document: the XML itself, or the members of the zip."""
    data = render("page", doc)
    if len(doc.pages) == 1:
        return [data]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [archive.read(name) for name in archive.namelist()]


def alto_line_text(line: etree._Element) -> str:
    return " ".join(s.get("CONTENT") for s in line.iter(f"{ALTO}String"))


# --- ALTO -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DOCUMENTS)
def test_alto_is_valid(name: str) -> None:
    doc = DOCUMENTS[name]()
    root = etree.fromstring(render("alto", doc))
    schema("alto-4-4.xsd").assertValid(root)
    pages = root.findall(f"{ALTO}Layout/{ALTO}Page")
    assert [int(p.get("PHYSICAL_IMG_NR")) for p in pages] == [p.number for p in doc.pages]


def test_alto_carries_corrected_text_and_keeps_the_ocr() -> None:
    doc = french_document()
    root = etree.fromstring(render("alto", doc))
    block = root.find(f".//{ALTO}TextBlock[@ID='p1-b1']")
    assert block.get("LANG") == "fr"
    lines = block.findall(f"{ALTO}TextLine")
    assert [alto_line_text(ln) for ln in lines] == doc.pages[0].blocks[0].best_text.split("\n")
    strings = {s.get("CONTENT"): s for s in block.iter(f"{ALTO}String")}
    alternatives = {
        content: [(a.text, a.get("PURPOSE")) for a in s.findall(f"{ALTO}ALTERNATIVE")]
        for content, s in strings.items()
    }
    assert alternatives["château"] == [("chateau", "OCR")]
    assert alternatives["Versailles"] == [("Versailes", "OCR")]
    assert alternatives["Le"] == [] and alternatives["magnifique"] == []
    # The engine's word boxes are kept (page pixels), confidences are 0..1.
    word = doc.pages[0].blocks[0].lines[0].words[1]
    château = strings["château"]
    assert [int(château.get(k)) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT")] == [
        word.bbox[0],
        word.bbox[1],
        word.bbox[2] - word.bbox[0],
        word.bbox[3] - word.bbox[1],
    ]
    assert float(château.get("WC")) == pytest.approx(word.confidence)


def test_alto_uncorrected_block_has_ocr_text_and_estimated_word_boxes() -> None:
    doc = french_document()
    root = etree.fromstring(render("alto", doc))
    block = root.find(f".//{ALTO}TextBlock[@ID='p1-b2']")
    lines = block.findall(f"{ALTO}TextLine")
    assert [alto_line_text(ln) for ln in lines] == [
        "Reçu la somme de quinze francs,",
        "à Noël, cœur léger — Zoë.",
    ]
    assert block.find(f".//{ALTO}ALTERNATIVE") is None
    line_box = doc.pages[0].blocks[1].lines[0].bbox
    for string in lines[0].findall(f"{ALTO}String"):  # estimated boxes stay inside the line
        x, w = int(string.get("HPOS")), int(string.get("WIDTH"))
        assert line_box[0] <= x and x + w <= line_box[2] and w > 0


def test_alto_processing_names_engine_and_corrector_with_versions() -> None:
    root = etree.fromstring(render("alto", french_document()))
    assert root.findtext(f"{ALTO}Description/{ALTO}MeasurementUnit") == "pixel"
    processing = root.find(f"{ALTO}Description/{ALTO}OCRProcessing")
    ocr = processing.find(f"{ALTO}ocrProcessingStep/{ALTO}processingSoftware")
    assert ocr.findtext(f"{ALTO}softwareName") == "rapidocr"
    assert ocr.findtext(f"{ALTO}softwareVersion") == "3.4.2"
    post = processing.find(f"{ALTO}postProcessingStep")
    assert post.findtext(f"{ALTO}processingSoftware/{ALTO}softwareName") == "transformers"
    assert post.findtext(f"{ALTO}processingSoftware/{ALTO}softwareVersion") == "5.0.0"
    descriptions = [d.text for d in post.findall(f"{ALTO}processingStepDescription")]
    assert "model: tiny-fr" in descriptions


def test_alto_japanese_and_edge_pages() -> None:
    root = etree.fromstring(render("alto", mixed_document()))
    pages = root.findall(f"{ALTO}Layout/{ALTO}Page")
    assert pages[1].find(f".//{ALTO}TextBlock") is None  # empty page
    blank = pages[2].findall(f".//{ALTO}TextBlock")
    assert len(blank) == 1 and blank[0].find(f"{ALTO}TextLine") is None
    assert blank[0].get("LANG") is None  # und is left out
    japanese = pages[3].find(f".//{ALTO}TextBlock")
    assert japanese.get("LANG") == "ja"
    assert [alto_line_text(ln) for ln in japanese.findall(f"{ALTO}TextLine")] == [
        "東京の古文書を読む",
        "明治三年 手紙",
    ]


def test_alto_one_file_per_page_on_request() -> None:
    doc = mixed_document()
    files = get_renderer("alto").render_pages(doc)
    assert [name for name, _ in files] == [f"lettre_{n:04d}.xml" for n in range(1, 5)]
    for number, (_, data) in enumerate(files, start=1):
        root = etree.fromstring(data)
        schema("alto-4-4.xsd").assertValid(root)
        pages = root.findall(f"{ALTO}Layout/{ALTO}Page")
        assert [p.get("PHYSICAL_IMG_NR") for p in pages] == [str(number)]


def test_alto_marks_failed_pages() -> None:
    root = etree.fromstring(render("alto", DOCUMENTS["failed-page"]()))
    pages = root.findall(f"{ALTO}Layout/{ALTO}Page")
    assert pages[0].get("QUALITY_DETAIL") is None
    assert pages[1].get("QUALITY_DETAIL") == "not recognised: could not rasterise"


# --- PAGE -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DOCUMENTS)
def test_page_files_are_valid(name: str) -> None:
    doc = DOCUMENTS[name]()
    files = page_files(doc)
    assert len(files) == len(doc.pages)
    for data in files:
        schema("pagecontent-2019-07-15.xsd").assertValid(etree.fromstring(data))


def test_page_multi_page_documents_are_a_zip_of_one_file_per_page() -> None:
    doc = mixed_document()
    renderer = get_renderer("page")
    assert renderer.extension_for(doc) == "page.zip"
    assert renderer.extension_for(french_document()) == "page.xml"
    with zipfile.ZipFile(io.BytesIO(renderer.render(doc, RenderContext()))) as archive:
        names = archive.namelist()
        assert names == [f"page/lettre_{n:04d}.xml" for n in range(1, 5)]
        for n, name in enumerate(names, start=1):
            page = etree.fromstring(archive.read(name)).find(f"{PC}Page")
            assert page.get("imageFilename") == f"lettre_{n:04d}.png"
    assert renderer.extension == "page.zip"  # set by render() for callers that read it after
    single = etree.fromstring(render("page", japanese_document())).find(f"{PC}Page")
    assert single.get("imageFilename") == "tegami.png"
    assert (single.get("imageWidth"), single.get("imageHeight")) == ("1240", "1754")


def test_page_reading_order_follows_blocks() -> None:
    doc = document([two_column_page(1)])
    page = etree.fromstring(page_files(doc)[0]).find(f"{PC}Page")
    refs = page.findall(f"{PC}ReadingOrder/{PC}OrderedGroup/{PC}RegionRefIndexed")
    assert [(r.get("index"), r.get("regionRef")) for r in refs] == [
        ("0", "p1-b1"),
        ("1", "p1-b2"),
        ("2", "p1-b3"),
    ]
    assert [r.get("id") for r in page.findall(f"{PC}TextRegion")] == ["p1-b1", "p1-b2", "p1-b3"]
    empty = etree.fromstring(page_files(document([empty_page(1)]))[0]).find(f"{PC}Page")
    assert empty.find(f"{PC}ReadingOrder") is None and empty.find(f"{PC}TextRegion") is None


def equivs(element: etree._Element) -> list[tuple[str, str]]:
    return [(e.get("index"), e.findtext(f"{PC}Unicode")) for e in element.findall(f"{PC}TextEquiv")]


def test_page_text_equiv_corrected_first_then_original() -> None:
    doc = french_document()
    page = etree.fromstring(page_files(doc)[0]).find(f"{PC}Page")
    corrected, plain = page.findall(f"{PC}TextRegion")
    assert corrected.get("primaryLanguage") == "French"
    block = doc.pages[0].blocks[0]
    assert equivs(corrected) == [("0", block.correction.text), ("1", block.text)]
    line = corrected.find(f"{PC}TextLine")
    assert equivs(line) == [("0", "Le château de Versailles"), ("1", "Le chateau de Versailes")]
    words = line.findall(f"{PC}Word")
    assert [equivs(w) for w in words] == [
        [("0", "Le")],
        [("0", "château"), ("1", "chateau")],
        [("0", "de")],
        [("0", "Versailles"), ("1", "Versailes")],
    ]
    for element in line.iter(f"{PC}TextEquiv"):
        assert 0.0 <= float(element.get("conf")) <= 1.0
    # Uncorrected block: one TextEquiv, and no Word level since the engine gave no words.
    assert equivs(plain) == [("0", doc.pages[0].blocks[1].text)]
    assert plain.find(f".//{PC}Word") is None


def test_page_languages_and_coordinates() -> None:
    doc = mixed_document()
    files = page_files(doc)
    japanese = etree.fromstring(files[3]).find(f"{PC}Page/{PC}TextRegion")
    assert japanese.get("primaryLanguage") == "Japanese"
    assert equivs(japanese.find(f"{PC}TextLine")) == [("0", "東京の古文書を読む")]
    blank = etree.fromstring(files[2]).find(f"{PC}Page/{PC}TextRegion")
    assert blank.get("primaryLanguage") is None
    coords = japanese.find(f"{PC}TextLine/{PC}Coords").get("points")
    assert coords == "100,150 820,150 820,230 100,230"


def test_page_language_names_are_in_the_schema() -> None:
    tree = etree.parse(str(SCHEMAS / "pagecontent-2019-07-15.xsd"))
    xs = "{http://www.w3.org/2001/XMLSchema}"
    allowed = {
        e.get("value")
        for t in tree.iter(f"{xs}simpleType")
        if t.get("name") == "LanguageSimpleType"
        for e in t.iter(f"{xs}enumeration")
    }
    assert set(PAGE_LANGUAGE_NAMES.values()) <= allowed
    assert page_language("fr") == "French" and page_language("de-CH") == "German"
    assert page_language("und") is None and page_language("") is None
    assert page_language("xx") == "other"


# --- hOCR -------------------------------------------------------------------------------------


def hocr_report(data: bytes, tmp_path: Path):
    path = tmp_path / "out.hocr"
    path.write_bytes(data)
    return HocrValidator("standard").validate(str(path), parse_strict=True)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_hocr_passes_hocr_spec(name: str, tmp_path: Path) -> None:
    data = render("hocr", DOCUMENTS[name]())
    report = hocr_report(data, tmp_path)
    assert report.is_valid(), report.format("text")
    etree.fromstring(data)  # well-formed XHTML too


@pytest.mark.parametrize(
    ("find", "replace"),
    [
        (b"bbox 120 200", b"bbox 120 y200"),  # unparsable property
        (b'class="ocr_par"', b'class="ocr_page"'),  # lines inside two pages
    ],
)
def test_hocr_spec_rejects_a_broken_file(find: bytes, replace: bytes, tmp_path: Path) -> None:
    """The checker is not a rubber stamp: the same file, broken, fails it."""
    data = render("hocr", french_document())
    broken = data.replace(find, replace)
    assert broken != data
    assert not hocr_report(broken, tmp_path).is_valid()


def test_hocr_structure_text_and_properties() -> None:
    doc = mixed_document()
    root = etree.fromstring(render("hocr", doc))
    metas = {m.get("name"): m.get("content") for m in root.iter(f"{XHTML}meta")}
    assert "rapidocr 3.4.2" in metas["ocr-system"]
    assert {"ocr_page", "ocr_line", "ocrx_word", "ocrp_wconf"} <= set(
        metas["ocr-capabilities"].split()
    )
    pages = [d for d in root.iter(f"{XHTML}div") if d.get("class") == "ocr_page"]
    assert len(pages) == 4
    assert (
        pages[0].get("title")
        == 'image "lettre.pdf"; bbox 0 0 1240 1754; ppageno 0; scan_res 150 150'
    )
    careas = [d for d in pages[0].iter(f"{XHTML}div") if d.get("class") == "ocr_carea"]
    assert careas[0].get("lang") == "fr"
    assert careas[0].find(f"{XHTML}p").get("lang") == "fr"
    lines = [s for s in pages[0].iter(f"{XHTML}span") if s.get("class") == "ocr_line"]
    texts = [" ".join(w.text for w in ln) for ln in lines]
    assert texts == doc.pages[0].text.replace("\n\n", "\n").split("\n")
    word = lines[0][1]
    assert word.get("class") == "ocrx_word" and word.text == "château"
    assert re.fullmatch(r"bbox \d+ \d+ \d+ \d+; x_wconf \d+", word.get("title"))
    assert word.get("title").endswith("x_wconf 81")
    assert [p for p in pages[1].iter() if p is not pages[1]] == []  # empty page
    japanese = [s for s in pages[3].iter(f"{XHTML}span") if s.get("class") == "ocrx_word"]
    assert [w.text for w in japanese] == ["東京の古文書を読む", "明治三年", "手紙"]


def test_characters_xml_cannot_hold_are_dropped(tmp_path: Path) -> None:
    doc = french_document()
    block = doc.pages[0].blocks[1]
    block.lines[0].text = "Fac\x1bture\x00 n°3"
    block.text = "\n".join(ln.text for ln in block.lines)
    alto = etree.fromstring(render("alto", doc))
    schema("alto-4-4.xsd").assertValid(alto)
    line = alto.find(f".//{ALTO}TextBlock[@ID='p1-b2']/{ALTO}TextLine")
    assert alto_line_text(line) == "Facture n°3"
    page = etree.fromstring(page_files(doc)[0])
    schema("pagecontent-2019-07-15.xsd").assertValid(page)
    assert "Facture n°3" in [u.text for u in page.iter(f"{PC}Unicode")]
    assert hocr_report(render("hocr", doc), tmp_path).is_valid()


def test_corrected_words_are_aligned_with_the_ocr_words() -> None:
    from manuscribe.renderers.common import line_tokens
    from tests.render_fixtures import make_line

    line = make_line("la maison du pere est grande la bas", (0, 0, 700, 40), words=True)
    boxes = {w.text: w.bbox for w in line.words}
    tokens = line_tokens(line, "la maison du père est là-bas grande")
    got = [(t.text, t.original) for t in tokens]
    assert got == [
        ("la", None),
        ("maison", None),
        ("du", None),
        ("père", "pere"),
        ("est", None),
        ("là-bas", ""),  # moved: nothing in the OCR at this place
        ("grande", "grande la bas"),  # the OCR words the correction dropped stay with it
    ]
    assert tokens[3].bbox == boxes["pere"]
    assert tokens[6].bbox[0] == boxes["grande"][0] and tokens[6].bbox[2] == line.bbox[2]
    assert all(line.bbox[0] <= t.bbox[0] <= t.bbox[2] <= line.bbox[2] for t in tokens)
    # Merging two OCR words into one keeps both boxes; an emptied line has no words.
    merged = line_tokens(make_line("por te", (0, 0, 120, 40), words=True), "porte")
    assert [(t.text, t.original, t.bbox) for t in merged] == [("porte", "por te", (0, 0, 120, 40))]
    assert line_tokens(make_line("xx", (0, 0, 50, 40), words=True), "") == []


def test_a_line_the_correction_emptied_keeps_its_ocr() -> None:
    doc = french_document()
    block = doc.pages[0].blocks[0]
    block.correction.text = "Le château de Versailles\n"
    alto = etree.fromstring(render("alto", doc))
    schema("alto-4-4.xsd").assertValid(alto)
    second = alto.findall(f".//{ALTO}TextBlock[@ID='p1-b1']/{ALTO}TextLine")[1]
    (string,) = second.findall(f"{ALTO}String")
    assert string.get("CONTENT") == ""
    assert string.findtext(f"{ALTO}ALTERNATIVE") == "était magnifique en été."
    page = etree.fromstring(page_files(doc)[0])
    schema("pagecontent-2019-07-15.xsd").assertValid(page)
    line = page.findall(f".//{PC}TextLine")[1]
    assert equivs(line) == [("0", ""), ("1", "était magnifique en été.")]
