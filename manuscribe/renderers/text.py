"""Plain text: block texts in reading order, blocks separated by a blank line, pages by form feed."""

from __future__ import annotations

from manuscribe.model import Document
from manuscribe.renderers.base import RenderContext


class TextRenderer:
    format = "txt"
    extension = "txt"

    def render(self, document: Document, context: RenderContext) -> bytes:
        return ("\f".join(page.text for page in document.pages) + "\n").encode()
