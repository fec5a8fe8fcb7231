"""JSON: the document model itself, the lossless output every other format derives from."""

from __future__ import annotations

from manuscribe.model import Document
from manuscribe.renderers.base import RenderContext


class JsonRenderer:
    format = "json"
    extension = "json"

    def render(self, document: Document, context: RenderContext) -> bytes:
        return document.model_dump_json(indent=1).encode()
