"""ALTO 4.4: one file per document, one <Page> per page, in page pixels.

Blocks become TextBlocks (LANG = the block's ISO 639-1 code), lines TextLines, words Strings
(WC = word confidence 0..1). When a block was corrected, String CONTENT is the corrected word
and the OCR reading is kept as <ALTERNATIVE PURPOSE="OCR">. Description/OCRProcessing records
the engine (ocrProcessingStep) and the corrector (postProcessingStep) with their versions.
"""

from __future__ import annotations

import json
from pathlib import PurePath

from lxml import etree

from manuscribe.model import BBox, Block, Document, Page
from manuscribe.renderers.base import RenderContext
from manuscribe.renderers.common import (
    IdMaker,
    clamp_bbox,
    confidence,
    correction_models,
    is_corrected,
    iso_language,
    line_baseline,
    line_polygon,
    line_texts,
    line_tokens,
    points_text,
    xml_safe,
)

ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XLINK_NS = "http://www.w3.org/1999/xlink"
SCHEMA_LOCATION = f"{ALTO_NS} http://www.loc.gov/alto/v4/alto-4-4.xsd"
ORIGINAL_PURPOSE = "OCR"  # PURPOSE of the <ALTERNATIVE> that keeps the uncorrected reading


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs) -> etree._Element:
    element = etree.SubElement(
        parent, f"{{{ALTO_NS}}}{tag}", {k: xml_safe(v) for k, v in attrs.items()}
    )
    if text is not None:
        element.text = xml_safe(text)
    return element


def _box(bbox: BBox) -> dict[str, str]:
    x0, y0, x1, y1 = bbox
    return {"HPOS": str(x0), "VPOS": str(y0), "WIDTH": str(x1 - x0), "HEIGHT": str(y1 - y0)}


class AltoRenderer:
    format = "alto"
    extension = "alto.xml"

    def render(self, document: Document, context: RenderContext) -> bytes:
        return self._build(document, document.pages)

    def render_pages(self, document: Document) -> list[tuple[str, bytes]]:
        """One ALTO file per page, (`<stem>_0001.xml`, bytes), for METS/ALTO repositories."""
        stem = PurePath(document.name).stem or "document"
        return [(f"{stem}_{p.number:04d}.xml", self._build(document, [p])) for p in document.pages]

    def _build(self, document: Document, pages: list[Page]) -> bytes:
        root = etree.Element(
            f"{{{ALTO_NS}}}alto",
            nsmap={None: ALTO_NS, "xsi": XSI_NS, "xlink": XLINK_NS},
            attrib={"SCHEMAVERSION": "4.4", f"{{{XSI_NS}}}schemaLocation": SCHEMA_LOCATION},
        )
        self._description(root, document)
        layout = _el(root, "Layout")
        ids = IdMaker()
        for page in pages:
            self._page(layout, page, ids)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)

    def _description(self, root: etree._Element, document: Document) -> None:
        description = _el(root, "Description")
        _el(description, "MeasurementUnit", "pixel")
        source = _el(description, "sourceImageInformation")
        _el(source, "fileName", document.name)
        _el(source, "documentIdentifier", document.id)
        processing = _el(description, "OCRProcessing", ID="OCR_0")
        engine = document.engine
        step = _el(processing, "ocrProcessingStep")
        _el(step, "processingCategory", "contentGeneration")
        _el(step, "processingStepDescription", "handwritten text recognition")
        _el(step, "processingStepSettings", _settings(engine.settings, engine.fingerprint))
        self._software(step, engine.name, engine.version, document)
        corrector = document.corrector
        if corrector is not None:
            step = _el(processing, "postProcessingStep")
            _el(step, "processingCategory", "contentModification")
            _el(step, "processingStepDescription", "text correction")
            for model in correction_models(document):
                _el(step, "processingStepDescription", f"model: {model}")
            _el(
                step, "processingStepSettings", _settings(corrector.settings, corrector.fingerprint)
            )
            self._software(step, corrector.name, corrector.version, document)

    @staticmethod
    def _software(step: etree._Element, name: str, version: str, document: Document) -> None:
        software = _el(step, "processingSoftware")
        _el(software, "softwareName", name)
        _el(software, "softwareVersion", version)
        _el(
            software,
            "applicationDescription",
            f"run by manuscribe {document.manuscribe_version or 'unknown'}",
        )

    def _page(self, layout: etree._Element, page: Page, ids: IdMaker) -> None:
        attrs = {
            "ID": ids(f"page_{page.number}", f"page_{page.number}"),
            "PHYSICAL_IMG_NR": str(page.number),
            "WIDTH": str(page.width),
            "HEIGHT": str(page.height),
        }
        if page.blocks:
            attrs["PC"] = str(confidence(page.confidence))
        if page.error:
            attrs["QUALITY_DETAIL"] = f"not recognised: {page.error}"
        element = _el(layout, "Page", **attrs)
        space = _el(element, "PrintSpace", **_box((0, 0, page.width, page.height)))
        for n, block in enumerate(page.blocks, start=1):
            self._block(space, page, block, ids(block.id, f"p{page.number}_b{n}"), ids)

    def _block(
        self, space: etree._Element, page: Page, block: Block, block_id: str, ids: IdMaker
    ) -> None:
        attrs = {"ID": block_id, **_box(clamp_bbox(block.bbox, page))}
        language = iso_language(block.language)
        if language:
            attrs["LANG"] = language
        element = _el(space, "TextBlock", **attrs)
        corrected = is_corrected(block)
        for n, (line, text, original) in enumerate(line_texts(block), start=1):
            if not text.strip() and not original.strip():
                continue  # an ALTO TextLine needs at least one String
            line_id = ids(f"{block_id}_l{n}", f"{block_id}_l{n}")
            line_box = clamp_bbox(line.bbox, page)
            geometry = _box(line_box)
            baseline = line_baseline(line, page)
            if baseline:  # ALTO 4.2+: a points list (4.0/4.1 had a single float)
                geometry["BASELINE"] = points_text(baseline)
            text_line = _el(element, "TextLine", ID=line_id, **geometry)
            polygon = line_polygon(line, page)
            if polygon:  # Shape comes first in a TextLine, before its Strings
                _el(_el(text_line, "Shape"), "Polygon", POINTS=points_text(polygon))
            tokens = line_tokens(line, text)
            if not tokens:  # the correction emptied the line: keep its OCR reading
                string = _el(text_line, "String", CONTENT="", **_box(line_box))
                _el(string, "ALTERNATIVE", original, PURPOSE=ORIGINAL_PURPOSE)
                continue
            previous: BBox | None = None
            for k, token in enumerate(tokens, start=1):
                box = clamp_bbox(token.bbox, page)
                if previous is not None:
                    gap = box[0] - previous[2]
                    space_box = {"HPOS": str(previous[2]), "WIDTH": str(gap)} if gap > 0 else {}
                    _el(text_line, "SP", **space_box)
                string = _el(
                    text_line,
                    "String",
                    ID=ids(f"{line_id}_w{k}", f"{line_id}_w{k}"),
                    CONTENT=token.text,
                    WC=str(token.confidence),
                    **_box(box),
                )
                if corrected and token.original is not None:
                    _el(string, "ALTERNATIVE", token.original, PURPOSE=ORIGINAL_PURPOSE)
                previous = box


def _settings(settings: dict, fingerprint: str) -> str:
    return json.dumps(
        {"settings": settings, "fingerprint": fingerprint},
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
