"""Group recognised lines into blocks (paragraphs / regions) and order them for reading.

Line-level engines (rapidocr) give no regions, so blocks are built here: a line joins the block just
above it when they overlap horizontally and the vertical gap is small against the page's median line
height. Engines that find blocks themselves (tesseract) keep their grouping.
"""

from __future__ import annotations

from statistics import median

from manuscribe.model import BBox, Block, Line
from manuscribe.reading_order import order_blocks

LAYOUT_VERSION = "1"  # bump when grouping changes: it is part of the OCR fingerprint

MAX_GAP_LINES = 1.2  # a gap above this many line heights starts a new block
MIN_OVERLAP = 0.25  # horizontal overlap (of the narrower box) needed to join a block
MAX_ROW_GAP_LINES = 2.0  # fragments of one row closer than this many line heights stay together


def union(boxes: list[BBox]) -> BBox:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def horizontal_overlap(a: BBox, b: BBox) -> float:
    """Overlap of the two x-ranges as a share of the narrower one (0..1)."""
    overlap = min(a[2], b[2]) - max(a[0], b[0])
    narrower = max(1, min(a[2] - a[0], b[2] - b[0]))
    return max(0.0, overlap / narrower)


def group_lines(lines: list[Line]) -> list[list[int]]:
    """Indexes of `lines` grouped into blocks (each block top-to-bottom)."""
    if not lines:
        return []
    height = median(max(1, ln.bbox[3] - ln.bbox[1]) for ln in lines)
    order = sorted(range(len(lines)), key=lambda i: (_centre_y(lines[i]), lines[i].bbox[0]))
    groups: list[list[int]] = []
    boxes: list[BBox] = []  # running box of each group's last line, for the gap test
    for index in order:
        box = lines[index].bbox
        best, best_gap = None, None
        for g, last in enumerate(boxes):
            if _same_row(box, last) and _horizontal_gap(box, last) < MAX_ROW_GAP_LINES * height:
                gap = 0  # a fragment of the same written line
            else:
                gap = box[1] - last[3]
                if gap > MAX_GAP_LINES * height or box[1] < last[1]:
                    continue
                group_box = union([lines[i].bbox for i in groups[g]])
                if horizontal_overlap(box, group_box) < MIN_OVERLAP:
                    continue
            if best_gap is None or gap < best_gap:
                best, best_gap = g, gap
        if best is None:
            groups.append([index])
            boxes.append(box)
        else:
            groups[best].append(index)
            boxes[best] = box
    return [_reading_order_within(lines, g, height) for g in groups]


def _same_row(a: BBox, b: BBox) -> bool:
    """Vertical overlap of at least half the shorter box."""
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    return overlap >= 0.5 * max(1, min(a[3] - a[1], b[3] - b[1]))


def _horizontal_gap(a: BBox, b: BBox) -> int:
    return max(a[0], b[0]) - min(a[2], b[2])


def _centre_y(line: Line) -> float:
    return (line.bbox[1] + line.bbox[3]) / 2


def _reading_order_within(lines: list[Line], group: list[int], height: float) -> list[int]:
    """Rows top-to-bottom (centres within half a line height share a row), each left-to-right."""
    rows: list[list[int]] = []
    for index in sorted(group, key=lambda i: _centre_y(lines[i])):
        if rows and abs(_centre_y(lines[index]) - _centre_y(lines[rows[-1][0]])) < height / 2:
            rows[-1].append(index)
        else:
            rows.append([index])
    return [i for row in rows for i in sorted(row, key=lambda i: lines[i].bbox[0])]


def build_blocks(
    lines: list[Line], groups: list[list[int]], page_number: int, page_width: int
) -> list[Block]:
    """Blocks from line groups, in reading order, with ids `p<page>-b<n>`."""
    blocks = []
    for group in groups:
        members = [lines[i] for i in group if lines[i].text.strip()]
        if not members:
            continue
        weights = [max(1, len(ln.text)) for ln in members]
        confidence = sum(ln.confidence * w for ln, w in zip(members, weights, strict=True))
        blocks.append(
            Block(
                id="",
                bbox=union([ln.bbox for ln in members]),
                lines=members,
                text="\n".join(ln.text for ln in members),
                confidence=round(confidence / sum(weights), 4),
            )
        )
    ordered = order_blocks(blocks, page_width)
    for n, block in enumerate(ordered, start=1):
        block.id = f"p{page_number}-b{n}"
    return ordered
