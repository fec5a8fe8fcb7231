"""The review report's HTML, without a browser: escaping, files, index order, streaming.

What a person sees in Chromium is checked in tests/test_report_browser.py.
"""

from __future__ import annotations

import io
import json

import lxml.html
import pytest
from PIL import Image
from typer.testing import CliRunner

from manuscribe.cli import app
from manuscribe.model import Correction, Failure
from manuscribe.renderers import FOLDER_FORMATS, RenderContext, get_renderer, parse_formats
from manuscribe.report.build import (
    MAX_SIDE,
    PrefixedSink,
    document_files,
    document_slug,
    finish_report,
    scan_jpeg,
    write_document,
)
from manuscribe.report.diff import diff_html
from manuscribe.report.folder import build_report
from manuscribe.stages import render_document, report_files
from manuscribe.storage import LocalStorage
from tests import render_fixtures as rf

HOSTILE = [
    "<script>window.__pwned = 1</script>",
    '"><img src=x onerror="window.__pwned=2">',
    "Tom &amp; Jerry </li></ol><b>bold?</b>",
]


def hostile_document():
    page = rf.french_page(1)
    block = rf.make_block(
        "p1-b3", [rf.make_line(t, (100, 700 + 70 * n, 900, 760 + 70 * n), words=False)
                  for n, t in enumerate(HOSTILE)]
    )  # fmt: skip
    block.correction = Correction(status="skipped", reason="confidence <b>low</b>")
    page.blocks.append(block)
    return rf.document([page, rf.failed_page(2)], name="hostile<script>.pdf")


def files_of(document, page_image=None, truth=None) -> dict[str, bytes]:
    return dict(document_files(document, page_image, truth))


def test_untrusted_text_is_escaped_never_markup():
    document = hostile_document()
    files = files_of(document, rf.image_source(document))
    slug = document_slug(document.name)
    html = files[f"report/docs/{slug}/p0001.html"].decode()
    tree = lxml.html.fromstring(html)
    texts = [
        el.text_content() for el in tree.xpath("//li[contains(@class, 'line')]/span[@class='t']")
    ]
    for text in HOSTILE:
        assert text in texts  # shown exactly, as text
    scripts = tree.xpath("//script")
    assert [s.get("src") for s in scripts] == ["../../data/order.js", "../../assets/page.js"]
    assert all(not (s.text or "").strip() for s in scripts)
    assert not tree.xpath("//img[@src='x']") and not tree.xpath("//b[text()='bold?']")
    assert "confidence &lt;b&gt;low&lt;/b&gt;" in html
    assert "<title>hostile&lt;script&gt;.pdf" in html
    csp = tree.xpath("//meta[@http-equiv='Content-Security-Policy']/@content")[0]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp


def test_diff_marks_changes_and_escapes():
    html = diff_html("Le chateau <de> Versailes", "Le château <de> Versailles")
    assert "<del>chateau</del><ins>château</ins>" in html
    assert "<del>Versailes</del><ins>Versailles</ins>" in html
    assert "&lt;de&gt;" in html and "<de>" not in html


def test_document_files_one_view_and_scan_per_page():
    document = rf.mixed_document()
    files = files_of(document, rf.image_source(document))
    slug = document_slug(document.name)
    for number in range(1, 5):
        assert f"report/docs/{slug}/p{number:04d}.html" in files
        scan = Image.open(io.BytesIO(files[f"report/docs/{slug}/p{number:04d}.jpg"]))
        assert max(scan.size) <= MAX_SIDE
        assert abs(scan.width / scan.height - rf.A4[0] / rf.A4[1]) < 0.01
    summary = json.loads(files[f"report/data/docs/{slug}.json"])
    assert [row["number"] for row in summary["pages"]] == [1, 2, 3, 4]
    assert summary["pages"][0]["applied"] == 1 and summary["pages"][0]["rejected"] == 1
    corrected = [line for line in summary["lines"] if line[1] == "L1"][0]
    assert corrected[3] == "Le château de Versailles"  # the main (corrected) text


def test_correction_diff_status_and_reason_in_view():
    document = rf.french_document()
    html = files_of(document)[f"report/docs/{document_slug(document.name)}/p0001.html"].decode()
    tree = lxml.html.fromstring(html)
    summaries = [s.text_content() for s in tree.xpath("//details[@class='correction']/summary")]
    assert any("applied" in s and "model: tiny-fr" in s for s in summaries)
    assert any("rejected" in s and "reason: changed too much" in s for s in summaries)
    assert [d.text_content() for d in tree.xpath("//details[@class='correction']//del")] == [
        "chateau",
        "Versailes",
    ]
    assert "fingerprint c0ff" in tree.xpath("//footer")[0].text_content()
    assert (
        tree.xpath("//li[contains(@class, 'line')]")[0].get("title")
        == "OCR read: Le chateau de Versailes"
    )


def test_view_without_scan_still_draws_the_boxes():
    document = rf.french_document()
    html = files_of(document)[f"report/docs/{document_slug(document.name)}/p0001.html"].decode()
    tree = lxml.html.fromstring(html)
    assert not tree.xpath("//img") and tree.xpath("//div[@class='frame noscan']/svg/rect")


def test_lines_with_a_polygon_are_drawn_as_their_outline():
    document = rf.french_document()
    page = document.pages[0]
    rf.with_outlines(page)
    plain = page.blocks[1].lines[1]
    plain.polygon = [(120, 500), (900, 560)]  # degenerate: drawn by its box
    html = files_of(document)[f"report/docs/{document_slug(document.name)}/p0001.html"].decode()
    svg = lxml.html.fromstring(html).xpath("//div[contains(@class, 'frame')]/svg")[0]
    shapes = [el for el in svg if "box" in el.get("class", "").split()]
    assert [el.get("data-line") for el in shapes] == ["L1", "L2", "L3", "L4"]
    assert [el.tag for el in shapes] == ["polygon", "polygon", "polygon", "rect"]
    lines = [ln for b in page.blocks for ln in b.lines]
    for element, line in zip(shapes[:3], lines, strict=False):
        drawn = [tuple(int(v) for v in p.split(",")) for p in element.get("points").split()]
        assert drawn == line.polygon
        assert element.get("data-conf") and "q9" in element.get("class")
        assert element.find("title").text.startswith(element.get("data-line") + " · ")
    x0, y0, x1, y1 = plain.bbox
    rect = shapes[3]
    assert [int(rect.get(k)) for k in ("x", "y", "width", "height")] == [x0, y0, x1 - x0, y1 - y0]


def test_scans_are_rendered_one_page_at_a_time():
    document = rf.document([rf.french_page(n) for n in range(1, 6)])
    calls: list[int] = []

    def page_image(number: int) -> Image.Image:
        calls.append(number)
        return rf.page_image(document.pages[number - 1])

    files = document_files(document, page_image)
    next(files)  # the first page's scan
    assert calls == [1]
    list(files)
    assert calls == [1, 2, 3, 4, 5]


def test_deskewed_pages_get_the_rotated_scan():
    page = rf.french_page(1)
    plain = scan_jpeg(page, lambda n: rf.page_image(page))
    page.preprocessing = ["deskew:+3.0", "denoise", "contrast"]
    rotated = scan_jpeg(page, lambda n: rf.page_image(page))
    assert plain[1:] == rotated[1:] and plain[0] != rotated[0]


def test_index_worst_first_with_failures_and_reasons(tmp_path):
    sink = LocalStorage(tmp_path)
    good = rf.document([rf.french_page(1)], name="good.pdf")
    good.pages[0].confidence = 0.95
    bad = rf.document([rf.french_page(1), rf.failed_page(2), rf.empty_page(3)], name="bad.pdf")
    bad.pages[0].confidence = 0.40
    for document in (good, bad):
        write_document(sink, document, None)
    failed = Failure(
        source="/in/x.pdf", name="x", stage="ingest", error="PDF is password-protected"
    )
    totals = finish_report(sink, [failed.model_dump()])
    assert totals == {"documents": 2, "pages": 4, "failed_pages": 1, "failed_documents": 1,
                      "lines": 8}  # fmt: skip
    tree = lxml.html.fromstring((tmp_path / "report/index.html").read_bytes())
    rows = [tr.get("data-page") for tr in tree.xpath("//table[contains(@class, 'pages')]/tbody/tr")]
    bad_slug, good_slug = document_slug("bad.pdf"), document_slug("good.pdf")
    assert rows == [
        f"docs/{bad_slug}/p0002.html",  # failed
        f"docs/{bad_slug}/p0003.html",  # empty: confidence 0
        f"docs/{bad_slug}/p0001.html",
        f"docs/{good_slug}/p0001.html",
    ]
    failures = tree.xpath("//*[@id='failures']")[0].text_content()
    assert "PDF is password-protected" in failures and "could not rasterise" in failures
    order = (tmp_path / "report/data/order.js").read_text()
    assert order.index("bad") < order.index("good")  # navigation in document order
    for name in ("report.css", "index.js", "page.js"):
        assert (tmp_path / "report/assets" / name).stat().st_size > 500
    lines_js = (tmp_path / "report/data/lines.js").read_text()
    assert lines_js.startswith("window.MANUSCRIBE_PAGES = [") and "MANUSCRIBE_LINES" in lines_js


def test_prefixed_sink_writes_below_its_prefix(tmp_path):
    sink = PrefixedSink(LocalStorage(tmp_path), "results/job-1")
    write_document(sink, rf.french_document(), None)
    finish_report(sink)
    assert (tmp_path / "results/job-1/report/index.html").is_file()
    assert list(sink.list("report/data/docs/"))[0].startswith("report/data/docs/")


def test_html_is_a_folder_format():
    assert parse_formats("json,html") == ["json", "html"] and FOLDER_FORMATS == ("html",)
    document = rf.french_document()
    assert list(render_document(document, ["json", "html"])) == ["json"]
    keys = [k for k, _ in report_files(document, ["json", "html"], RenderContext())]
    assert keys[-1].startswith("report/data/docs/") and len(keys) == 2
    with pytest.raises(TypeError):
        get_renderer("html").render(document, RenderContext())


def test_report_command_over_a_folder(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no manuscribe document JSON" in result.output
    document = rf.french_document()
    (tmp_path / "lettre.json").write_text(document.model_dump_json())
    (tmp_path / "notes.json").write_text('{"not": "a document"}')
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "1 documents, 1 pages" in result.output and "without their scan" in result.output
    assert (tmp_path / "report/index.html").is_file()


def test_report_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "lettre.json").write_text(rf.french_document().model_dump_json())
    (tmp_path / "report").mkdir()
    (tmp_path / "report/mine.txt").write_text("keep me")
    with pytest.raises(Exception, match="not a manuscribe report"):
        build_report(tmp_path)
    assert (tmp_path / "report/mine.txt").read_text() == "keep me"
