"""Read hOCR (from a remote OCR service) into lines, words and blocks in page pixels.

Lines are `ocr_line`-like elements, words `ocrx_word`, blocks the enclosing `ocr_par` / `ocr_carea`.
Boxes are scaled from the hOCR page's frame to the page as we rasterised it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from lxml import etree

from manuscribe.engines.base import PageResult
from manuscribe.model import Line, Word

UNKNOWN_CONFIDENCE = 0.5  # a line the service gave no confidence for
_BBOX = re.compile(
    r"\bbbox\s+(-?\d+(?:\.\d+)?)\s+(-?\d+(?:\.\d+)?)\s+(-?\d+(?:\.\d+)?)\s+(-?\d+(?:\.\d+)?)"
)
_WCONF = re.compile(r"\bx_wconf\s+(-?\d+(?:\.\d+)?)")
_LINE_CLASSES = {"ocr_line", "ocrx_line", "ocr_textfloat", "ocr_header", "ocr_caption"}
_BLOCK_CLASSES = {"ocr_par", "ocr_carea", "ocrx_block"}


class HocrError(ValueError):
    """The data is not usable hOCR; the message is safe to show (no payload in it)."""


class HocrPage:
    def __init__(self, bbox: tuple[float, ...] | None):
        self.bbox = bbox
        self.lines: list[tuple[tuple[float, ...], str, float, list, int | None]] = []


def parse_hocr(raw: bytes) -> list[HocrPage]:
    """Pages of an hOCR document, each with its lines (box, text, confidence, words, block)."""
    try:
        root = etree.fromstring(
            raw, etree.HTMLParser(encoding="utf-8", no_network=True, remove_comments=True)
        )
    except (ValueError, etree.LxmlError) as exc:
        raise HocrError(f"not valid hOCR ({type(exc).__name__})") from None
    if root is None:
        raise HocrError("empty document")
    page_els = [el for el in root.iter() if "ocr_page" in _classes(el)]
    if not page_els:
        raise HocrError("no ocr_page element")
    pages = []
    for page_el in page_els:
        page = HocrPage(_bbox(page_el))
        blocks: dict[int, int] = {}
        line_els = [el for el in page_el.iter() if _classes(el) & _LINE_CLASSES]
        for line_el in line_els:
            if any(_classes(d) & _LINE_CLASSES for d in line_el.iterdescendants()):
                continue  # a float or header holding lines: read the inner lines
            words = []
            for w in line_el.iter():
                if "ocrx_word" in _classes(w) and _bbox(w) is not None:
                    text = " ".join("".join(w.itertext()).split())
                    if text:
                        words.append((_bbox(w), text, _conf(w)))
            text = " ".join(t for _, t, _ in words) or " ".join("".join(line_el.itertext()).split())
            box = _bbox(line_el) or _union([b for b, _, _ in words])
            if not text or box is None:
                continue
            confs = [c for _, _, c in words if c is not None]
            conf = sum(confs) / len(confs) if confs else _conf(line_el)
            block = next((a for a in line_el.iterancestors() if _classes(a) & _BLOCK_CLASSES), None)
            key = None if block is None else blocks.setdefault(id(block), len(blocks))
            page.lines.append((box, text, UNKNOWN_CONFIDENCE if conf is None else conf, words, key))
        pages.append(page)
    return pages


def to_page_result(
    page: HocrPage, size: tuple[int, int] | None, sent: tuple[int, int] | None
) -> PageResult:
    """Scale boxes from the hOCR page's frame to `size` (the page in our pixels)."""
    frame = (page.bbox[2] - page.bbox[0], page.bbox[3] - page.bbox[1]) if page.bbox else sent
    ox, oy = (page.bbox[0], page.bbox[1]) if page.bbox else (0.0, 0.0)
    if size is None or not frame or frame[0] <= 0 or frame[1] <= 0:
        sx = sy = 1.0
        size = size or (10**9, 10**9)
    else:
        sx, sy = size[0] / frame[0], size[1] / frame[1]

    def scale(b: tuple[float, ...]) -> tuple[int, int, int, int]:
        x0, y0 = max(0, int((b[0] - ox) * sx)), max(0, int((b[1] - oy) * sy))
        x1 = min(size[0], math.ceil((b[2] - ox) * sx))
        y1 = min(size[1], math.ceil((b[3] - oy) * sy))
        return (x0, y0, max(x0, x1), max(y0, y1))

    lines: list[Line] = []
    groups: dict[object, list[int]] = {}
    for box, text, conf, words, key in page.lines:
        # a line outside any paragraph/area is a block of its own
        groups.setdefault(("line", len(lines)) if key is None else key, []).append(len(lines))
        lines.append(
            Line(
                bbox=scale(box),
                text=text,
                confidence=round(_clamp(conf), 4),
                words=[
                    Word(
                        bbox=scale(b),
                        text=t,
                        confidence=round(_clamp(UNKNOWN_CONFIDENCE if c is None else c), 4),
                    )
                    for b, t, c in words
                ],
            )
        )
    if all(key is None for *_, key in page.lines):
        return PageResult(lines=lines)  # the service gave no regions: the pipeline groups lines
    return PageResult(lines=lines, blocks=list(groups.values()))


def _classes(el: Any) -> set[str]:
    value = el.get("class") if isinstance(el.tag, str) else None
    return set(value.split()) if value else set()


def _bbox(el: Any) -> tuple[float, ...] | None:
    match = _BBOX.search(el.get("title") or "")
    if not match:
        return None
    box = tuple(float(v) for v in match.groups())
    return box if box[2] >= box[0] and box[3] >= box[1] else None


def _conf(el: Any) -> float | None:
    match = _WCONF.search(el.get("title") or "")
    return float(match.group(1)) / 100 if match else None


def _union(boxes: list[tuple[float, ...]]) -> tuple[float, ...] | None:
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))
