"""The review report in a real browser: Debian's headless Chromium driven by Playwright.

Real handwritten pages are OCR'd once (`manuscribe run --formats json,html`), a corrected
document with a hostile line and a failed page is added, and the report is rebuilt with
`manuscribe report`. Screenshots go to build/test-artifacts/report/ (or
$MANUSCRIBE_TEST_ARTIFACTS). `make test` installs chromium and playwright; when either is
missing these tests fail, they are never skipped.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from typer.testing import CliRunner

from manuscribe.cli import app
from manuscribe.model import Correction, Document, Line
from manuscribe.renderers.common import clamp_bbox
from manuscribe.report.build import document_slug
from manuscribe.report.page_view import view_lines
from tests.conftest import REPO, SAMPLE_PAGES

CHROMIUM = os.environ.get("MANUSCRIBE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("MANUSCRIBE_TEST_ARTIFACTS", REPO / "build/test-artifacts/report"))
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
HOSTILE = "<script>window.__pwned = 1</script><img src=x onerror=window.__pwned=2>"
runner = CliRunner()


@pytest.fixture(scope="module")
def out(tmp_path_factory, dataset) -> Path:
    """An output folder: two real pages OCR'd, a bad input, a corrected two-page document."""
    inputs = tmp_path_factory.mktemp("inputs")
    for page_id in SAMPLE_PAGES[:2]:
        shutil.copy(dataset / f"{page_id}.pdf", inputs / f"{page_id}.pdf")
    (inputs / "broken.pdf").write_bytes(b"%PDF-1.7\n garbage")
    folder = tmp_path_factory.mktemp("out")
    args = ["run", str(inputs), "--out", str(folder), "--corrector", "none"]
    result = runner.invoke(app, [*args, "--formats", "json,html"])
    assert result.exit_code == 1, result.output  # broken.pdf fails, the rest finishes
    assert (folder / "report/index.html").is_file()
    real = Document.model_validate_json((folder / f"{SAMPLE_PAGES[0]}.json").read_bytes())
    (folder / "zz_corrected.json").write_text(corrected_document(real).model_dump_json())
    result = runner.invoke(app, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    assert "without their scan" not in result.output  # sources found through the manifest
    return folder


def corrected_document(real: Document) -> Document:
    """The real page with corrections of every status, a hostile line, then a failed page."""
    document = real.model_copy(deep=True)
    document.name = "zz_corrected"
    page = document.pages[0]
    first = page.blocks[0]
    lines = first.text.split("\n")
    lines[0] = "Corrigé " + lines[0]
    first.correction = Correction(text="\n".join(lines), status="applied", model="tiny-fr")
    x0, y0, x1, y1 = first.lines[0].bbox  # a slanted outline, as kraken gives, on L1
    quarter = (y1 - y0) // 4
    first.lines[0].polygon = [(x0, y0 + quarter), (x1, y0), (x1, y1 - quarter), (x0, y1)]
    hostile = page.blocks[-1]
    hostile.lines[0] = Line(bbox=hostile.lines[0].bbox, text=HOSTILE, confidence=0.05)
    hostile.text = "\n".join(line.text for line in hostile.lines)
    hostile.correction = Correction(status="rejected", reason="edit ratio 0.62 > 0.35")
    if len(page.blocks) > 2:
        page.blocks[1].correction = Correction(status="skipped", reason="block confidence 0.10")
    failed = page.model_copy(update={"number": 2, "blocks": [], "error": "cannot render page"})
    document.pages = [page, failed]
    return document


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} missing: apt-get install chromium (make test)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


class Visit:
    """A browser page that records console errors, page errors and every request."""

    def __init__(self, browser, allowed: str):
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.allowed = allowed

    def open(self, url: str):
        self.page.goto(url)
        self.page.wait_for_load_state("load")
        return self.page

    def check_clean(self) -> None:
        assert self.errors == []
        outside = [u for u in self.requests if not u.startswith(self.allowed)]
        assert outside == [], "requests outside the report folder"
        assert self.page.evaluate("window.__pwned") is None

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser, out):
    visit = Visit(browser, (out / "report").as_uri() + "/")
    yield visit
    visit.close()


def page_url(out: Path, name: str, number: int = 1, anchor: str = "") -> str:
    path = out / "report/docs" / document_slug(name) / f"p{number:04d}.html"
    return path.as_uri() + anchor


def test_index_sorts_worst_first_and_lists_lines_to_check(visit, out):
    page = visit.open((out / "report/index.html").as_uri())
    rows = page.locator("table.pages tbody tr")
    first = rows.nth(0)
    assert "zz_corrected" in first.inner_text() and "failed" in first.inner_text()
    confidences = [float(c) for c in page.locator("table.pages tbody td.conf").all_inner_texts()]
    ok = confidences[1:]  # after the failed page: lowest confidence first
    assert ok == sorted(ok)
    assert "broken" in page.locator("#failures").inner_text()  # the failed document, and why
    assert "cannot render page" in page.locator("#failures").inner_text()
    # the hostile line is listed first (confidence 0.05), as text
    first_check = page.locator("#check-list li .t").first
    assert first_check.text_content() == HOSTILE
    for threshold in (0.3, 0.8):
        set_range(page, "#threshold", threshold)
        assert page.locator("#check-list li").count() == count_below(out, threshold)
        low = [int(n) for n in page.locator("table.pages td.low").all_inner_texts()]
        assert sum(low) == count_below(out, threshold, limit=False)
    page.locator("table.pages th", has_text="confidence").click()  # ascending again
    assert page.locator("table.pages th", has_text="confidence").get_attribute("aria-sort")
    visit.shot("index")
    visit.check_clean()


def set_range(page, selector: str, value: float) -> None:
    page.eval_on_selector(
        selector,
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }",
        value,
    )


def count_below(out: Path, threshold: float, limit: bool = True) -> int:
    total = 0
    for path in [*out.glob("*.json")]:
        document = Document.model_validate_json(path.read_bytes())
        total += sum(1 for p in document.pages for v in view_lines(p) if v.confidence < threshold)
    return min(total, 200) if limit else total  # the list shows 200 at a time


@pytest.mark.parametrize("name", [SAMPLE_PAGES[0], SAMPLE_PAGES[1], "zz_corrected"])
def test_drawn_boxes_match_the_json_boxes(visit, out, name):
    document = Document.model_validate_json((out / f"{name}.json").read_bytes())
    page_model = document.pages[0]
    page = visit.open(page_url(out, name))
    page.wait_for_function("() => { const i = document.querySelector('.frame img');"
                           " return i && i.complete && i.naturalWidth > 0; }")  # fmt: skip
    assert page.locator(".frame img").get_attribute("loading") == "lazy"
    drawn = page.evaluate(
        """() => { const r = document.querySelector('.frame img').getBoundingClientRect();
        return [...document.querySelectorAll('svg .box')].map(el => {
          const b = el.getBoundingClientRect();
          return [el.dataset.line, b.left - r.left, b.top - r.top, b.right - r.left,
                  b.bottom - r.top, r.width, r.height]; }); }"""
    )
    lines = view_lines(page_model)
    assert [d[0] for d in drawn] == [v.id for v in lines]
    for (_, *box, width, height), item in zip(drawn, lines, strict=True):
        sx, sy = width / page_model.width, height / page_model.height
        x0, y0, x1, y1 = clamp_bbox(item.line.bbox, page_model)
        if item.line.polygon:  # drawn as its outline: compare the outline's bounds
            xs, ys = [p[0] for p in item.line.polygon], [p[1] for p in item.line.polygon]
            x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        expected = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
        assert max(abs(a - b) for a, b in zip(box, expected, strict=True)) <= 2, item.id
    texts = page.locator("li.line .t").all_text_contents()
    assert texts == [v.text for v in lines]  # reading order, main text
    visit.shot(f"page-{name}")
    visit.check_clean()


def test_selecting_a_line_highlights_both_sides(visit, out):
    page = visit.open(page_url(out, SAMPLE_PAGES[1]))
    page.locator('rect.box[data-line="L3"]').click()
    assert "sel" in page.locator("li#L3").get_attribute("class")
    page.locator("li#L5").hover()
    assert "hl" in page.locator('rect.box[data-line="L5"]').get_attribute("class")
    assert "sel" in page.locator('rect.box[data-line="L3"]').get_attribute("class")
    visit.shot("selected-line")
    page.keyboard.press("j")  # the first line below the threshold
    selected = page.locator("li.line.sel")
    assert selected.count() == 1 and "low" in selected.get_attribute("class")
    page.keyboard.press("Escape")
    assert page.locator("li.line.sel").count() == 0
    visit.check_clean()


def test_a_line_polygon_is_drawn_as_its_outline_and_links_to_its_text(visit, out):
    document = Document.model_validate_json((out / "zz_corrected.json").read_bytes())
    line = document.pages[0].blocks[0].lines[0]
    page = visit.open(page_url(out, "zz_corrected"))
    assert page.locator("svg polygon.box").count() == 1
    polygon = page.locator('polygon.box[data-line="L1"]')
    drawn = [tuple(int(v) for v in p.split(",")) for p in polygon.get_attribute("points").split()]
    assert drawn == line.polygon
    assert page.locator('rect.box[data-line="L1"]').count() == 0  # the outline, not the box
    assert page.locator('rect.box[data-line="L2"]').count() == 1  # other lines: their box
    polygon.hover()
    assert "hl" in page.locator("li#L1").get_attribute("class")
    page.locator("li#L2").click()
    polygon.click()
    assert "sel" in page.locator("li#L1").get_attribute("class")
    assert "sel" in polygon.get_attribute("class")
    # The click focuses it; no focus ring, which would draw its bounding box around it.
    assert polygon.evaluate("el => getComputedStyle(el).outlineStyle") == "none"
    assert page.url.endswith("#L1")
    visit.shot("line-polygon")
    visit.check_clean()


def test_keyboard_moves_between_pages_across_documents(visit, out):
    page = visit.open(page_url(out, SAMPLE_PAGES[0]))
    order = json.loads((out / "report/data/order.js").read_text().split("=", 1)[1].rstrip(";\n"))
    here = order.index(f"docs/{document_slug(SAMPLE_PAGES[0])}/p0001.html")
    with page.expect_navigation():
        page.keyboard.press("ArrowRight")
    assert page.url.endswith(order[here + 1])
    with page.expect_navigation():
        page.keyboard.press("ArrowLeft")
    assert page.url.endswith(order[here])
    visit.check_clean()


def test_hostile_text_shows_as_text_and_corrections_as_diffs(visit, out):
    page = visit.open(page_url(out, "zz_corrected", anchor="#L1"))
    hostile = page.locator("li.line .t", has_text="<script>")
    assert hostile.text_content() == HOSTILE
    assert page.locator("li.line img").count() == 0
    corrections = page.locator("details.correction summary").all_inner_texts()
    assert any("applied" in c and "tiny-fr" in c for c in corrections)
    assert any("rejected" in c and "edit ratio 0.62 > 0.35" in c for c in corrections)
    assert page.locator("details.correction ins").first.text_content().strip() == "Corrigé"
    assert "sel" in page.locator("li#L1").get_attribute("class")  # selected from the link
    visit.shot("corrected-and-hostile")
    with page.expect_navigation():
        page.keyboard.press("ArrowRight")
    assert "not recognised: cannot render page" in page.locator(".scan").inner_text()
    visit.shot("failed-page")
    visit.check_clean()


def test_ground_truth_colours_lines_by_cer(browser, out, dataset, tmp_path):
    folder = tmp_path / "with-gt"
    shutil.copytree(out, folder)
    result = runner.invoke(app, ["eval", str(folder), "--gt", str(dataset), "--html"])
    assert result.exit_code == 0, result.output
    visit = Visit(browser, (folder / "report").as_uri() + "/")
    try:
        page = visit.open(page_url(folder, SAMPLE_PAGES[1]))
        assert page.locator("details.truth tbody tr").count() > 10
        assert page.locator("li.line.cer").count() > 5  # lines matched to a GT line
        assert page.locator("details.truth del, details.truth ins").count() > 0
        assert "by-cer" in page.locator("body").get_attribute("class")
        assert page.locator("rect.gtbox").count() == page.locator("details.truth tbody tr").count()
        visit.shot("ground-truth")
        visit.check_clean()
        index = visit.open((folder / "report/index.html").as_uri())
        assert "line CER" in index.locator("table.pages thead").inner_text()
        visit.check_clean()
    finally:
        visit.close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass


def test_served_over_http_like_s3(browser, out):
    handler = functools.partial(QuietHandler, directory=str(out))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/report/"
    visit = Visit(browser, base)
    try:
        index = visit.open(base + "index.html")
        with index.expect_navigation():
            index.locator("table.pages tbody tr a").nth(1).click()
        assert index.locator("rect.box").count() > 0
        visit.check_clean()
    finally:
        visit.close()
        server.shutdown()
        server.server_close()
