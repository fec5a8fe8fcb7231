"""Plain text: blocks in reading order, a blank line between blocks, a form feed between pages."""

from __future__ import annotations

from manuscribe.model import Document
from manuscribe.renderers.base import RenderContext


class TextRenderer:
    format = "txt"
    extension = "txt"

    def render(self, document: Document, context: RenderContext) -> bytes:
        return ("\f".join(page.text for page in document.pages) + "\n").encode()
