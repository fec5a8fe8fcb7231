"""HTML: the review report, a folder (`report/`) rather than one file per document.

Each document adds its page views, scans and summary under `report/`; the index over all
documents is written once they are all there (`manuscribe.report.finish_report`). See
`manuscribe/report/` and docs/formats.md.
"""

from __future__ import annotations

from collections.abc import Iterator

from manuscribe.model import Document
from manuscribe.renderers.base import RenderContext


class HtmlRenderer:
    format = "html"
    extension = "report"  # a folder: `files()` gives the keys under the output root

    def files(self, document: Document, context: RenderContext) -> Iterator[tuple[str, bytes]]:
        """(key under the output folder, bytes), one page's view and scan at a time."""
        from manuscribe.report.build import document_files

        return document_files(document, context.page_image)

    def render(self, document: Document, context: RenderContext) -> bytes:
        raise TypeError("the html format is a folder: use files(), or stages.report_files()")
