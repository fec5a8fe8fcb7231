"""Output formats; `get_renderer(name)` returns the renderer for one `--formats` entry."""

from __future__ import annotations

from manuscribe.renderers.base import RenderContext, Renderer

FORMATS = ("json", "txt", "alto", "page", "hocr", "pdf", "html")
FOLDER_FORMATS = ("html",)  # written as a folder (report/), not one file per document


def get_renderer(name: str) -> Renderer:
    if name == "json":
        from manuscribe.renderers.json_renderer import JsonRenderer

        return JsonRenderer()
    if name == "txt":
        from manuscribe.renderers.text import TextRenderer

        return TextRenderer()
    if name == "alto":
        from manuscribe.renderers.alto import AltoRenderer

        return AltoRenderer()
    if name == "page":
        from manuscribe.renderers.page_xml import PageXmlRenderer

        return PageXmlRenderer()
    if name == "hocr":
        from manuscribe.renderers.hocr import HocrRenderer

        return HocrRenderer()
    if name == "pdf":
        from manuscribe.renderers.pdf import SearchablePdfRenderer

        return SearchablePdfRenderer()
    if name == "html":
        from manuscribe.renderers.html import HtmlRenderer

        return HtmlRenderer()
    raise ValueError(f"unknown output format {name!r}; choose from: {', '.join(FORMATS)}")


def parse_formats(value: str | list[str]) -> list[str]:
    """'json,txt' or a list -> validated, de-duplicated list of format names."""
    names = value.split(",") if isinstance(value, str) else value
    result: list[str] = []
    for name in (n.strip().lower() for n in names):
        if not name:
            continue
        if name not in FORMATS:
            raise ValueError(f"unknown output format {name!r}; choose from: {', '.join(FORMATS)}")
        if name not in result:
            result.append(name)
    return result


__all__ = [
    "FOLDER_FORMATS",
    "FORMATS",
    "RenderContext",
    "Renderer",
    "get_renderer",
    "parse_formats",
]
