"""hOCR 1.2: XHTML with ocr_page / ocr_carea / ocr_par / ocr_line / ocrx_word.

One file per document, one ocr_page per page. Each block is an ocr_carea holding one ocr_par;
`lang` / `xml:lang` carry the block's language. The text is the main text (corrected when a
correction was applied); hOCR has no widely read place for the original OCR, which stays in the
JSON, ALTO and PAGE outputs. x_wconf is the word confidence in percent.
"""

from __future__ import annotations

from lxml import etree

from manuscribe.layout import union
from manuscribe.model import BBox, Document, Page
from manuscribe.renderers.base import RenderContext
from manuscribe.renderers.common import (
    clamp_bbox,
    iso_language,
    line_texts,
    line_tokens,
    stage_description,
    xml_safe,
)

XHTML_NS = "http://www.w3.org/1999/xhtml"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
DOCTYPE = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">'
)
CAPABILITIES = "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf ocrp_lang"


def _el(parent: etree._Element, tag: str, **attrs: str) -> etree._Element:
    return etree.SubElement(
        parent, f"{{{XHTML_NS}}}{tag}", {k: xml_safe(v) for k, v in attrs.items()}
    )


def _bbox(bbox: BBox) -> str:
    return "bbox {} {} {} {}".format(*bbox)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class HocrRenderer:
    format = "hocr"
    extension = "hocr"

    def render(self, document: Document, context: RenderContext) -> bytes:
        html = etree.Element(f"{{{XHTML_NS}}}html", nsmap={None: XHTML_NS})
        languages = {iso_language(b.language) for p in document.pages for b in p.blocks} - {None}
        if len(languages) == 1:
            html.set("lang", next(iter(languages)))
            html.set(XML_LANG, html.get("lang"))
        head = _el(html, "head")
        _el(head, "title").text = xml_safe(document.name)
        _el(head, "meta", **{"http-equiv": "Content-Type", "content": "text/html;charset=utf-8"})
        _el(head, "meta", name="ocr-system", content=stage_description(document))
        _el(head, "meta", name="ocr-capabilities", content=CAPABILITIES)
        _el(head, "meta", name="ocr-number-of-pages", content=str(len(document.pages)))
        if languages:
            _el(head, "meta", name="ocr-langs", content=" ".join(sorted(languages)))
        body = _el(html, "body")
        for page in document.pages:
            self._page(body, document, page)
        xml = etree.tostring(html, encoding="UTF-8", pretty_print=True, doctype=DOCTYPE)
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + xml

    def _page(self, body: etree._Element, document: Document, page: Page) -> None:
        n = page.number
        title = [
            f"image {_quote(document.name)}",
            _bbox((0, 0, page.width, page.height)),
            f"ppageno {n - 1}",
        ]
        if page.dpi > 0:
            title.append(f"scan_res {page.dpi} {page.dpi}")
        element = _el(body, "div", id=f"page_{n}", title="; ".join(title))
        element.set("class", "ocr_page")
        for b, block in enumerate(page.blocks, start=1):
            lang = iso_language(block.language)
            lang_attrs = {"lang": lang, XML_LANG: lang} if lang else {}
            box = _bbox(clamp_bbox(block.bbox, page))
            carea = _el(element, "div", id=f"block_{n}_{b}", title=box, **lang_attrs)
            carea.set("class", "ocr_carea")
            par = _el(carea, "p", id=f"par_{n}_{b}", title=box, **lang_attrs)
            par.set("class", "ocr_par")
            for k, (line, text, _original) in enumerate(line_texts(block), start=1):
                tokens = line_tokens(line, text)
                line_box = clamp_bbox(line.bbox, page)
                if tokens:  # a line box that misses some word boxes is widened to hold them
                    line_box = union([line_box] + [clamp_bbox(t.bbox, page) for t in tokens])
                span = _el(par, "span", id=f"line_{n}_{b}_{k}", title=_bbox(line_box))
                span.set("class", "ocr_line")
                previous = None
                for w, token in enumerate(tokens, start=1):
                    if previous is not None:
                        previous.tail = " "
                    word_box = clamp_bbox(token.bbox, page)
                    title = f"{_bbox(word_box)}; x_wconf {round(token.confidence * 100)}"
                    word = _el(span, "span", id=f"word_{n}_{b}_{k}_{w}", title=title)
                    word.set("class", "ocrx_word")
                    word.text = xml_safe(token.text)
                    previous = word
                span.tail = "\n"
