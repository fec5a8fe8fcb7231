"""The renderer seam: a Document (plus page images, for formats that embed them) -> bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from manuscribe.model import Document


@dataclass
class RenderContext:
    """What a renderer may need beyond the document model.

    `page_image(number)` rasterises the source page again at the page's dpi; only renderers that
    embed images (the searchable PDF) call it, one page at a time.
    """

    page_image: Callable[[int], Image.Image] | None = None


class Renderer(Protocol):
    format: str  # the --formats name
    extension: str  # file suffix, without the leading dot (e.g. "alto.xml")

    def render(self, document: Document, context: RenderContext) -> bytes: ...


class FolderRenderer(Protocol):
    """A format written as many files under the output root (the `html` review report)."""

    format: str

    def files(self, document: Document, context: RenderContext) -> Iterator[tuple[str, bytes]]: ...
