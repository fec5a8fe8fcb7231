"""PAGE XML 2019-07-15 (the version Transkribus, eScriptorium, OCR-D and Kitodo read).

A PcGts holds exactly one page, so a one-page document renders to one PAGE file
(`<name>.page.xml`) and a multi-page document to a zip of one PAGE file per page
(`<name>.page.zip`, entries `page/<stem>_0001.xml`, ...) — the layout Transkribus and
eScriptorium import. Blocks become TextRegions in `page.blocks` order, which is also the
ReadingOrder; the main text (corrected when a correction was applied) is TextEquiv index 0 and
the original OCR, for corrected blocks, TextEquiv index 1.
"""

from __future__ import annotations

import io
import os
import zipfile
from datetime import UTC, datetime
from pathlib import PurePath

from lxml import etree

from manuscribe.model import BBox, Block, Document, Page
from manuscribe.renderers.base import RenderContext
from manuscribe.renderers.common import (
    IdMaker,
    clamp_bbox,
    confidence,
    is_corrected,
    line_baseline,
    line_polygon,
    line_texts,
    line_tokens,
    page_language,
    points_text,
    xml_safe,
)

PAGE_NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{PAGE_NS} {PAGE_NS}/pagecontent.xsd"


def _el(parent: etree._Element, tag: str, **attrs: str) -> etree._Element:
    return etree.SubElement(
        parent, f"{{{PAGE_NS}}}{tag}", {k: xml_safe(v) for k, v in attrs.items()}
    )


def _points(bbox: BBox) -> str:
    x0, y0, x1, y1 = bbox
    return f"{x0},{y0} {x1},{y0} {x1},{y1} {x0},{y1}"


def _text_equiv(parent: etree._Element, text: str, index: int, conf: float, comment: str) -> None:
    equiv = _el(parent, "TextEquiv", index=str(index), conf=str(confidence(conf)))
    if comment:
        equiv.set("comments", comment)
    etree.SubElement(equiv, f"{{{PAGE_NS}}}Unicode").text = xml_safe(text)


def _timestamp() -> str:
    """Now, or SOURCE_DATE_EPOCH when set (reproducible output)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return moment.replace(microsecond=0).isoformat()


class PageXmlRenderer:
    format = "page"
    extension = "page.xml"

    def extension_for(self, document: Document) -> str:
        """`page.xml` for a one-page document, `page.zip` (one PAGE file per page) otherwise."""
        return "page.xml" if len(document.pages) == 1 else "page.zip"

    def render(self, document: Document, context: RenderContext) -> bytes:
        # Callers that read `.extension` after render() get the right suffix for this document.
        self.extension = self.extension_for(document)
        files = self.render_pages(document)
        if len(files) == 1:
            return files[0][1]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in files:
                info = zipfile.ZipInfo(f"page/{name}", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data)
        return buffer.getvalue()

    def render_pages(self, document: Document) -> list[tuple[str, bytes]]:
        """(file name, PcGts bytes) for each page, in page order."""
        stem = PurePath(document.name).stem or "document"
        single_image = len(document.pages) == 1 and document.media_type.startswith("image/")
        files = []
        for page in document.pages:
            base = f"{stem}_{page.number:04d}"
            image = document.name if single_image else f"{base}.png"
            files.append((f"{base}.xml", self.render_page(document, page, image)))
        return files

    def render_page(self, document: Document, page: Page, image_filename: str) -> bytes:
        root = etree.Element(
            f"{{{PAGE_NS}}}PcGts",
            nsmap={None: PAGE_NS, "xsi": XSI_NS},
            attrib={
                f"{{{XSI_NS}}}schemaLocation": SCHEMA_LOCATION,
                "pcGtsId": f"pc_{document.id[:16] or 'doc'}_{page.number}",
            },
        )
        self._metadata(root, document, page)
        element = _el(
            root,
            "Page",
            imageFilename=image_filename,
            imageWidth=str(page.width),
            imageHeight=str(page.height),
        )
        if page.dpi > 0:
            element.set("imageXResolution", str(page.dpi))
            element.set("imageYResolution", str(page.dpi))
            element.set("imageResolutionUnit", "PPI")
        ids = IdMaker()
        region_ids = [ids(b.id, f"r{n}") for n, b in enumerate(page.blocks, start=1)]
        if region_ids:
            order = _el(_el(element, "ReadingOrder"), "OrderedGroup", id="ro_1")
            for index, region_id in enumerate(region_ids):
                _el(order, "RegionRefIndexed", index=str(index), regionRef=region_id)
        for block, region_id in zip(page.blocks, region_ids, strict=True):
            self._region(element, page, block, region_id, ids)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)

    @staticmethod
    def _metadata(root: etree._Element, document: Document, page: Page) -> None:
        metadata = _el(root, "Metadata")
        now = _timestamp()
        version = document.manuscribe_version or "unknown"
        etree.SubElement(metadata, f"{{{PAGE_NS}}}Creator").text = xml_safe(f"manuscribe {version}")
        etree.SubElement(metadata, f"{{{PAGE_NS}}}Created").text = now
        etree.SubElement(metadata, f"{{{PAGE_NS}}}LastChange").text = now
        comments = f"{document.name}, page {page.number} of {len(document.pages)}"
        if page.error:
            comments += f"; page failed: {page.error}"
        etree.SubElement(metadata, f"{{{PAGE_NS}}}Comments").text = xml_safe(comments)
        stages = [("text recognition", document.engine)]
        if document.corrector is not None:
            stages.append(("text correction", document.corrector))
        for name, stage in stages:
            item = _el(
                metadata,
                "MetadataItem",
                type="processingStep",
                name=name,
                value=f"{stage.name} {stage.version}".strip(),
            )
            labels = _el(item, "Labels")
            _el(labels, "Label", type="version", value=stage.version or "unknown")
            if stage.fingerprint:
                _el(labels, "Label", type="fingerprint", value=stage.fingerprint)

    def _region(
        self, parent: etree._Element, page: Page, block: Block, region_id: str, ids: IdMaker
    ) -> None:
        region = _el(parent, "TextRegion", id=region_id, type="paragraph")
        language = page_language(block.language)
        if language:
            region.set("primaryLanguage", language)
        _el(region, "Coords", points=_points(clamp_bbox(block.bbox, page)))
        corrected = is_corrected(block)
        for n, (line, text, original) in enumerate(line_texts(block), start=1):
            line_id = ids(f"{region_id}_l{n}", f"{region_id}_l{n}")
            box = clamp_bbox(line.bbox, page)
            element = _el(parent=region, tag="TextLine", id=line_id)
            polygon = line_polygon(line, page)
            _el(element, "Coords", points=points_text(polygon) if polygon else _points(box))
            baseline = line_baseline(line, page)
            if not baseline:  # the engine gave none: estimate one at 80 % of the line height
                baseline_y = box[1] + round((box[3] - box[1]) * 0.8)
                baseline = [(box[0], baseline_y), (box[2], baseline_y)]
            _el(element, "Baseline", points=points_text(baseline))
            if line.words:
                for k, token in enumerate(line_tokens(line, text), start=1):
                    word = _el(element, "Word", id=ids(f"{line_id}_w{k}", f"{line_id}_w{k}"))
                    _el(word, "Coords", points=_points(clamp_bbox(token.bbox, page)))
                    _text_equiv(word, token.text, 0, token.confidence, "")
                    if corrected and token.original is not None:
                        _text_equiv(word, token.original, 1, token.confidence, "original OCR")
            _text_equiv(element, text, 0, line.confidence, "corrected" if corrected else "")
            if corrected:
                _text_equiv(element, original, 1, line.confidence, "original OCR")
        _text_equiv(region, block.best_text, 0, block.confidence, "corrected" if corrected else "")
        if corrected:
            _text_equiv(region, block.text, 1, block.confidence, "original OCR")
