"""The report's index: every page, worst first, failures with their reason, runs and their
fingerprints. The lines to check (below a threshold chosen in the page) come from
`data/lines.js` and are listed by the index script with `textContent` only."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

from manuscribe.report.page_view import CSP, DEFAULT_THRESHOLD, quality_class


@dataclass
class PageRow:
    """What the index shows of one page (kept for every page, so it stays small)."""

    document: str
    number: int
    pages: int  # pages of its document
    href: str  # relative to the report root
    confidence: float
    languages: str
    blocks: int
    lines: int
    applied: int
    rejected: int
    skipped: int
    error: str | None
    cer: float | None = None

    def sort_key(self, by_cer: bool = False) -> tuple:
        """Worst first: failed pages, then lowest confidence (highest CER with `by_cer`)."""
        badness = (self.cer or 0.0) if by_cer else 1 - self.confidence
        return (self.error is None, -badness, self.document, self.number)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def index_html(
    rows: list[PageRow],
    failures: list[dict],
    runs: Iterable[tuple[str, str]],
    totals: dict[str, int],
    by_cer: bool = False,
) -> str:
    """`rows` already sorted worst first (by CER with `by_cer`); `failures` are failed
    documents (page None)."""
    with_truth = any(r.cer is not None for r in rows)
    head = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{CSP}"
        "<title>manuscribe review report</title>"
        '<link rel="icon" href="assets/favicon.svg">'
        '<link rel="stylesheet" href="assets/report.css"></head>\n'
        f'<body class="index-view" data-threshold="{DEFAULT_THRESHOLD}">\n'
        "<header><h1>manuscribe review report</h1>"
        f'<p class="facts">{totals["documents"]} documents · {totals["pages"]} pages · '
        f"{totals['failed_pages']} failed pages · {totals['failed_documents']} failed "
        f"documents · {totals['lines']} lines</p></header>\n<main>\n"
    )
    parts = [head, _failures(rows, failures), _pages(rows, with_truth, by_cer)]
    parts += [_check(), _runs(runs)]
    scripts = '<script src="data/lines.js"></script><script src="assets/index.js"></script>'
    return "".join(parts) + f"</main>\n{scripts}\n</body></html>\n"


def _failures(rows: list[PageRow], failures: list[dict]) -> str:
    items = []
    for record in failures:
        items.append(
            f"<tr><td>{_e(record.get('name', ''))}</td><td>document</td>"
            f"<td>{_e(record.get('stage', ''))}</td><td>{_e(record.get('error', ''))}</td></tr>"
        )
    for row in rows:
        if row.error:
            link = f'<a href="{_e(row.href)}">page {row.number}</a>'
            items.append(
                f"<tr><td>{_e(row.document)}</td><td>{link}</td><td>recognise</td>"
                f"<td>{_e(row.error)}</td></tr>"
            )
    if not items:
        return '<section id="failures"><h2>Failures</h2><p>None.</p></section>\n'
    return (
        f'<section id="failures"><h2>Failures ({len(items)})</h2><table class="failures">'
        "<thead><tr><th>document</th><th>what</th><th>stage</th><th>reason</th></tr></thead>"
        f"<tbody>{''.join(items)}</tbody></table></section>\n"
    )


def _pages(rows: list[PageRow], with_truth: bool, by_cer: bool) -> str:
    worst = "highest line CER" if by_cer else "lowest confidence"
    columns = [
        ("document", "text"),
        ("page", "num"),
        ("confidence", "num"),
        *([("line CER", "num")] if with_truth else []),
        ("language", "text"),
        ("blocks", "num"),
        ("lines", "num"),
        ("to check", "num"),
        ("corrections a/r/s", "text"),
        ("status", "text"),
    ]
    heads = "".join(
        f'<th data-kind="{kind}" tabindex="0" aria-sort="none">{_e(name)}</th>'
        for name, kind in columns
    )
    body = []
    for row in rows:
        cer = ""
        if with_truth:
            value = "" if row.cer is None else f"{row.cer:.1%}"
            key = "" if row.cer is None else f"{row.cer:.4f}"
            cer = f'<td class="num" data-sort="{key}">{value}</td>'
        status = "failed" if row.error else "ok"
        body.append(
            f'<tr data-page="{_e(row.href)}" class="{quality_class(row.confidence)}">'
            f'<td><a href="{_e(row.href)}">{_e(row.document)}</a></td>'
            f'<td class="num" data-sort="{row.number}">{row.number} / {row.pages}</td>'
            f'<td class="num conf" data-sort="{row.confidence:.4f}">{row.confidence:.2f}</td>'
            f"{cer}<td>{_e(row.languages)}</td>"
            f'<td class="num">{row.blocks}</td><td class="num">{row.lines}</td>'
            f'<td class="num low" data-sort="0">–</td>'
            f"<td>{row.applied} / {row.rejected} / {row.skipped}</td>"
            f'<td class="{status}">{status}</td></tr>'
        )
    return (
        f'<section id="pages"><h2>Pages, worst first ({worst})</h2><p class="hint">'
        "Click a column to sort; click again to reverse.</p>"
        f'<table class="pages sortable"><thead><tr>{heads}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></section>\n"
    )


def _check() -> str:
    return (
        '<section id="check"><h2>Lines to check</h2><p class="controls"><label>confidence below '
        '<input id="threshold" type="range" min="0" max="1" step="0.01"> '
        '<output id="threshold-value"></output></label> '
        '<span id="check-count"></span></p><ol id="check-list" class="check"></ol>'
        '<button id="check-more" type="button" hidden>show more</button></section>\n'
    )


def _runs(runs: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<li><b>{_e(kind)}</b> {_e(text)}</li>" for kind, text in runs)
    return f'<section id="runs"><h2>Engines and models</h2><ul>{items}</ul></section>\n'
