"""Build the review report one page at a time, into any storage (a local folder or S3).

`document_files` turns one document into its files under `report/` (a view and a downscaled
scan per page, and a small summary); `finish_report` reads the summaries back and writes the
index, the navigation order, the lines to check and the assets. Only one document and one page
image are alive at a time, and the index keeps one small row per page.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Protocol

from PIL import Image

from manuscribe.model import Document, Page, StageInfo
from manuscribe.report.index_view import PageRow, index_html
from manuscribe.report.page_view import PageLinks, page_html, view_lines
from manuscribe.report.truth import PageTruth
from manuscribe.storage.keys import check_key, safe_name

REPORT_DIR = "report"
ASSETS = ("report.css", "index.js", "page.js", "favicon.svg")
MAX_SIDE = 1400  # longest side of the scans written beside the page views, in pixels
JPEG_QUALITY = 70

PageImage = Callable[[int], Image.Image]


class Sink(Protocol):
    """The part of `manuscribe.storage.Storage` the report needs."""

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def list(self, prefix: str) -> Iterator[str]: ...


class PrefixedSink:
    """A storage seen below a prefix, e.g. `results/<job>/` in S3 for the assemble stage."""

    def __init__(self, storage: Sink, prefix: str):
        self.storage, self.prefix = storage, prefix.rstrip("/") + "/"

    def put(self, key: str, data: bytes) -> None:
        self.storage.put(check_key(self.prefix + key), data)

    def get(self, key: str) -> bytes:
        return self.storage.get(check_key(self.prefix + key))

    def list(self, prefix: str) -> Iterator[str]:
        for key in self.storage.list(self.prefix + prefix):
            yield key[len(self.prefix) :]


def document_slug(name: str) -> str:
    """A file-name-safe folder for the document; a hash of the name keeps `a/x`, `a_x` apart."""
    return f"{safe_name(name, 80)}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def page_file(number: int) -> str:
    return f"p{number:04d}"


def scan_jpeg(page: Page, page_image: PageImage | None) -> tuple[bytes, int, int] | None:
    """The page's scan, deskewed as the engine saw it, downscaled, as JPEG; None without one."""
    if page_image is None or page.error or page.width <= 0:
        return None
    try:
        image = page_image(page.number)
    except Exception:  # a source that cannot be read again gives a view with boxes only
        return None
    angle = _deskew_angle(page)
    if angle:
        image = _rotate(image, angle)
    image = image.convert("RGB")
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue(), image.width, image.height


def _deskew_angle(page: Page) -> float:
    for step in page.preprocessing:
        if step.startswith("deskew:"):
            try:
                return float(step.split(":", 1)[1])
            except ValueError:
                return 0.0
    return 0.0


def _rotate(image: Image.Image, angle: float) -> Image.Image:
    """The rotation `preprocess.rotate` applied, on the colour scan (the boxes refer to it)."""
    import cv2
    import numpy as np

    array = np.asarray(image.convert("RGB"))
    centre = (array.shape[1] / 2, array.shape[0] / 2)
    matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
    size = (array.shape[1], array.shape[0])
    return Image.fromarray(cv2.warpAffine(array, matrix, size, borderMode=cv2.BORDER_REPLICATE))


def document_files(
    document: Document,
    page_image: PageImage | None,
    truth: dict[int, PageTruth] | None = None,
) -> Iterator[tuple[str, bytes]]:
    """(key under the output root, bytes) for one document: per page a view and its scan,
    then `report/data/docs/<slug>.json`, the summary `finish_report` reads."""
    slug = document_slug(document.name)
    base = f"{REPORT_DIR}/docs/{slug}"
    numbers = [p.number for p in document.pages]
    rows, lines = [], []
    for position, page in enumerate(document.pages):
        stem = page_file(page.number)
        scan = scan_jpeg(page, page_image)
        if scan is not None:
            yield f"{base}/{stem}.jpg", scan[0]
        prev = f"{page_file(numbers[position - 1])}.html" if position else "../../index.html"
        last = position == len(numbers) - 1
        after = "../../index.html" if last else f"{page_file(numbers[position + 1])}.html"
        links = PageLinks(
            index="../../index.html",
            prev=prev,
            next=after,
            image=(f"{stem}.jpg", scan[1], scan[2]) if scan else None,
            assets="../../assets",
            data="../../data",
        )
        page_truth = (truth or {}).get(page.number)
        yield f"{base}/{stem}.html", page_html(document, page, links, page_truth).encode()
        href = f"docs/{slug}/{stem}.html"
        items = view_lines(page)
        rows.append(_row(document, page, href, len(items), page_truth))
        lines.extend([href, v.id, v.confidence, v.text] for v in items)
    summary = {
        "name": document.name,
        "engine": _stage(document.engine),
        "corrector": _stage(document.corrector) if document.corrector else None,
        "pages": rows,
        "lines": lines,
    }
    yield f"{REPORT_DIR}/data/docs/{slug}.json", json.dumps(summary, ensure_ascii=False).encode()


def _stage(info: StageInfo) -> str:
    model = info.settings.get("model")
    text = f"{info.name} {info.version}".strip()
    if model:
        text += f" · model {model}"
    return f"{text} · fingerprint {info.fingerprint}"


def _row(document: Document, page: Page, href: str, lines: int, truth: PageTruth | None) -> dict:
    statuses = [b.correction.status for b in page.blocks if b.correction]
    return {
        "document": document.name,
        "number": page.number,
        "pages": len(document.pages),
        "href": href,
        "confidence": round(page.confidence, 4),
        "languages": ", ".join(sorted({b.language for b in page.blocks} - {"und"})) or "und",
        "blocks": len(page.blocks),
        "lines": lines,
        "applied": statuses.count("applied"),
        "rejected": statuses.count("rejected"),
        "skipped": statuses.count("skipped"),
        "error": page.error,
        "cer": round(truth.cer, 4) if truth is not None else None,
    }


def write_document(
    sink: Sink,
    document: Document,
    page_image: PageImage | None,
    truth: dict[int, PageTruth] | None = None,
) -> int:
    """Write one document's report files; returns how many files were written."""
    count = 0
    for key, data in document_files(document, page_image, truth):
        sink.put(key, data)
        count += 1
    return count


def finish_report(sink: Sink, failures: list[dict] | None = None) -> dict[str, int]:
    """Index, data and assets from the document summaries under `report/data/docs/`."""
    rows: list[PageRow] = []
    runs: dict[tuple[str, str], None] = {}
    pages_js, lines_js = [], []
    prefix = f"{REPORT_DIR}/data/docs/"
    keys = sorted(k for k in sink.list(prefix) if k.endswith(".json"))
    for key in keys:  # one summary at a time; navigation follows the (name-derived) keys
        summary = json.loads(sink.get(key))
        runs[("engine", summary["engine"])] = None
        if summary.get("corrector"):
            runs[("corrector", summary["corrector"])] = None
        page_index = {}
        for row in summary["pages"]:
            page_index[row["href"]] = len(pages_js)
            pages_js.append([row["document"], row["number"], row["href"]])
            rows.append(PageRow(**row))
        for href, line_id, conf, text in summary["lines"]:
            lines_js.append([page_index[href], line_id, conf, text])
    order = [row.href for row in rows]
    by_cer = any(r.cer is not None for r in rows) and all(
        r.cer is not None for r in rows if not r.error
    )  # with ground truth for every page (eval --html), worst means highest CER
    rows.sort(key=lambda row: row.sort_key(by_cer))
    documents = [f for f in failures or [] if f.get("page") is None]
    totals = {
        "documents": len(keys),
        "pages": len(rows),
        "failed_pages": sum(1 for r in rows if r.error),
        "failed_documents": len(documents),
        "lines": len(lines_js),
    }
    for name in ASSETS:
        data = resources.files("manuscribe.report").joinpath("assets", name).read_bytes()
        sink.put(f"{REPORT_DIR}/assets/{name}", data)
    sink.put(f"{REPORT_DIR}/data/order.js", _js("MANUSCRIBE_ORDER", order))
    data = _js("MANUSCRIBE_PAGES", pages_js) + _js("MANUSCRIBE_LINES", lines_js)
    sink.put(f"{REPORT_DIR}/data/lines.js", data)
    html = index_html(rows, documents, list(runs), totals, by_cer)
    sink.put(f"{REPORT_DIR}/index.html", html.encode())
    return totals


def _js(name: str, value: object) -> bytes:
    """`window.NAME = <JSON>;` — a script file, so it loads from disk (file://) as well."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return f"window.{name} = {text};\n".encode()
