"""One page of the review report: the scan with every line's box over it, the text beside it.

Boxes are drawn in an SVG whose viewBox is the page in pixels (the model's coordinates) laid
exactly over the downscaled scan, so they scale with the image whatever its size on screen.
A line with a polygon (from a baseline segmenter such as kraken) is drawn as that outline instead.
All text from the model is escaped here; the page's script only ever sets `textContent`.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from manuscribe.model import Block, Document, Line, Page
from manuscribe.renderers.common import (
    clamp_bbox,
    confidence,
    line_polygon,
    line_texts,
    points_text,
)
from manuscribe.report.diff import diff_html
from manuscribe.report.truth import PageTruth

DEFAULT_THRESHOLD = 0.75  # lines below this confidence are the ones a person should check
# Only the report's own files, even if some text slipped through unescaped: no inline script,
# no request to anywhere else.
CSP = (
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
    "script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'\">"
)


@dataclass
class ViewLine:
    """A line as the report shows it: its id on the page, main text and OCR text."""

    id: str  # "L1", "L2", ... in reading order over the page
    block: int  # index of its block in page.blocks
    line: Line
    text: str  # main text: corrected when a correction was applied
    ocr: str
    confidence: float


@dataclass
class PageLinks:
    """Where the page view links to, relative to its own file."""

    index: str
    prev: str | None
    next: str | None
    image: tuple[str, int, int] | None  # file name, width, height of the downscaled scan
    assets: str
    data: str


def view_lines(page: Page) -> list[ViewLine]:
    result = []
    for b, block in enumerate(page.blocks):
        for line, text, ocr in line_texts(block):
            n = len(result) + 1
            result.append(ViewLine(f"L{n}", b, line, text, ocr, confidence(line.confidence)))
    return result


def quality_class(value: float, prefix: str = "q") -> str:
    """`q0`..`q10`: the CSS colour class for a 0..1 score (confidence, or 1 - CER)."""
    return f"{prefix}{max(0, min(10, int(value * 10)))}"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def page_html(document: Document, page: Page, links: PageLinks, truth: PageTruth | None) -> str:
    lines = view_lines(page)
    title = f"{document.name} — page {page.number} of {len(document.pages)}"
    languages = sorted({b.language for b in page.blocks if b.language != "und"})
    facts = (
        f"confidence {page.confidence:.2f} · language {', '.join(languages) or 'und'} · "
        f"{len(page.blocks)} blocks · {len(lines)} lines"
    )
    if page.error:
        facts = "failed: not recognised"
    if truth is not None:
        facts += f" · line CER {truth.cer:.1%}"
    nav = [f'<a href="{_e(links.index)}" id="to-index">index</a>']
    for rel, href, label in (("prev", links.prev, "← previous"), ("next", links.next, "next →")):
        target = f' href="{_e(href)}"' if href else ""
        nav.append(f'<a rel="{rel}" id="{rel}"{target}>{label}</a>')
    head = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{CSP}"
        f"<title>{_e(title)}</title>"
        f'<link rel="icon" href="{_e(links.assets)}/favicon.svg">'
        f'<link rel="stylesheet" href="{_e(links.assets)}/report.css"></head>\n'
        f'<body class="page-view" data-threshold="{DEFAULT_THRESHOLD}">\n'
        f'<header><nav>{" ".join(nav)}</nav><h1>{_e(title)}</h1><p class="facts">{_e(facts)}</p>'
        '<p class="controls"><label>check lines below <input id="threshold" type="number" '
        'min="0" max="1" step="0.05"></label> <span class="keys">keys: ← → pages · '
        "j / k next / previous line to check · Esc clear</span>"
        f"{_cer_toggle(truth)}</p></header>\n"
    )
    text = _text(page, lines, truth, _footer(document))
    body = ['<main class="split">', _scan(page, lines, links, truth), text, "</main>\n"]
    scripts = (
        f'<script src="{_e(links.data)}/order.js"></script>'
        f'<script src="{_e(links.assets)}/page.js"></script>'
    )
    return head + "\n".join(body) + scripts + "\n</body></html>\n"


def _cer_toggle(truth: PageTruth | None) -> str:
    if truth is None:
        return ""
    return ' <label><input id="by-cer" type="checkbox" checked> colour lines by CER</label>'


def _classes(item: ViewLine, truth: PageTruth | None) -> str:
    """Colour classes of a line: by confidence, and by its GT line's CER when there is one."""
    classes = quality_class(item.confidence)
    cer = truth.pred_cer.get(item.id) if truth is not None else None
    if cer is not None:
        classes += f" cer {quality_class(1 - cer, 'e')}"
    return classes


def _scan(page: Page, lines: list[ViewLine], links: PageLinks, truth: PageTruth | None) -> str:
    if page.error:
        return (
            '<section class="scan failed"><p class="error">This page was not recognised: '
            f"{_e(page.error)}</p></section>"
        )
    width, height = max(page.width, 1), max(page.height, 1)
    shapes = []
    for item in lines:
        tip = _e(f"{item.id} · {item.confidence:.2f} · {item.text}")
        common = (
            f'class="box {_classes(item, truth)}" data-line="{item.id}" '
            f'data-conf="{item.confidence}"'
        )
        polygon = line_polygon(item.line, page)
        if polygon:
            shape = f'<polygon {common} points="{points_text(polygon)}">'
        else:
            x0, y0, x1, y1 = clamp_bbox(item.line.bbox, page)
            shape = f'<rect {common} x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}">'
        tag = "polygon" if polygon else "rect"
        shapes.append(f"{shape}<title>{tip}</title></{tag}>")
    if truth is not None:
        for n, gt in enumerate(truth.lines):
            x0, y0, x1, y1 = gt.bbox
            shapes.append(
                f'<rect class="gtbox" data-gt="G{n + 1}" x="{x0}" y="{y0}" '
                f'width="{x1 - x0}" height="{y1 - y0}"></rect>'
            )
    svg = (
        f'<svg viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(shapes)}</svg>'
    )
    if links.image is None:
        return (
            f'<section class="scan"><div class="frame noscan">{svg}'
            '<p class="note">scan not available: boxes only</p></div></section>'
        )
    name, w, h = links.image
    img = (
        f'<img src="{_e(name)}" width="{w}" height="{h}" loading="lazy" decoding="async" '
        f'alt="scan of page {page.number}">'
    )
    return f'<section class="scan"><div class="frame">{img}{svg}</div></section>'


def _text(page: Page, lines: list[ViewLine], truth: PageTruth | None, footer: str) -> str:
    parts = ['<section class="text">']
    if not lines and not page.error:
        parts.append('<p class="empty">No text was found on this page.</p>')
    for b, block in enumerate(page.blocks):
        parts.append(_block(block, [item for item in lines if item.block == b], truth))
    if truth is not None:
        parts.append(_truth_table(truth))
    parts.extend((footer, "</section>"))
    return "\n".join(parts)


def _block(block: Block, lines: list[ViewLine], truth: PageTruth | None) -> str:
    lang = f' lang="{_e(block.language)}"' if block.language not in ("", "und") else ""
    status = block.correction.status if block.correction else "none"
    head = (
        f'<h2><span class="bid">{_e(block.id)}</span> · {_e(block.language)} · '
        f'{confidence(block.confidence):.2f} · <span class="status s-{_e(status)}">'
        f"correction: {_e(status)}</span></h2>"
    )
    rows = []
    for item in lines:
        cer = truth.pred_cer.get(item.id) if truth is not None else None
        extra = f' data-cer="{cer:.4f}"' if cer is not None else ""
        changed = f' title="OCR read: {_e(item.ocr)}"' if item.ocr != item.text else ""
        rows.append(
            f'<li class="line {_classes(item, truth)}" id="{item.id}" '
            f'data-line="{item.id}" data-conf="{item.confidence}"{extra}{changed} tabindex="0">'
            f'<span class="conf">{item.confidence:.2f}</span>'
            f'<span class="t">{_e(item.text)}</span></li>'
        )
    parts = [f'<article class="block"{lang}>', head, f'<ol class="lines">{"".join(rows)}</ol>']
    if block.correction is not None:
        parts.append(_correction(block, lines))
    parts.append("</article>")
    return "".join(parts)


def _correction(block: Block, lines: list[ViewLine]) -> str:
    """Status, reason and model; for an applied correction, the lines it changed as diffs."""
    correction = block.correction
    facts = [f"status <b>{_e(correction.status)}</b>"]
    if correction.reason:
        facts.append(f"reason: {_e(correction.reason)}")
    if correction.model:
        facts.append(f"model: {_e(correction.model)}")
    body = ""
    if correction.status == "applied" and correction.text is not None:
        before, after = block.text.split("\n"), correction.text.split("\n")
        if len(before) != len(after) or len(before) != len(lines):  # guards should prevent it
            body = f'<p class="diff">{diff_html(block.text, correction.text)}</p>'
        else:
            changed = [
                f'<li value="{n + 1}" data-line="{lines[n].id}">{diff_html(old, new)}</li>'
                for n, (old, new) in enumerate(zip(before, after, strict=True))
                if old != new
            ]
            facts.append(f"{len(changed)} of {len(before)} lines changed")
            body = f'<ol class="diff">{"".join(changed)}</ol>' if changed else ""
    return (
        f'<details class="correction" open><summary>OCR → corrected · {" · ".join(facts)}'
        f"</summary>{body}</details>"
    )


def _truth_table(truth: PageTruth) -> str:
    rows = []
    for n, gt in enumerate(truth.lines):
        rows.append(
            f'<tr data-gt="G{n + 1}" class="{quality_class(1 - gt.cer, "e")}">'
            f'<td>{n + 1}</td><td class="num">{gt.cer:.1%}</td>'
            f'<td class="diff">{diff_html(gt.reference, gt.prediction)}</td></tr>'
        )
    return (
        '<details class="truth" open><summary>ground truth → prediction, per line '
        f"(line CER {truth.cer:.1%}; <del>missed</del> <ins>extra</ins>)</summary>"
        "<table><thead><tr><th>#</th><th>CER</th><th>diff</th></tr></thead><tbody>"
        f"{''.join(rows)}</tbody></table></details>"
    )


def _footer(document: Document) -> str:
    rows = [("document", document.name), ("source", document.source), ("sha256", document.id)]
    engine = document.engine
    rows.append(("engine", f"{engine.name} {engine.version} · fingerprint {engine.fingerprint}"))
    if document.corrector:
        corrector = document.corrector
        model = corrector.settings.get("model", "")
        rows.append(
            (
                "corrector",
                f"{corrector.name} {corrector.version} · model {model} · "
                f"fingerprint {corrector.fingerprint}",
            )
        )
    else:
        rows.append(("corrector", "none"))
    rows.append(("manuscribe", document.manuscribe_version or "unknown"))
    cells = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    return f'<footer><dl class="run">{cells}</dl></footer>\n'
