"""Reading order of blocks on a page: a recursive XY-cut that knows about columns and margins.

At each level the blocks are split where nothing covers a vertical strip (a gutter) or a
horizontal strip (a gap between rows):

* Columns come first when the groups on either side of a gutter stand side by side (their
  vertical extents overlap): left column, then the right one. Narrow groups at the page's edge
  beside wider text are margin notes: each is read right after the block it stands beside.
* Otherwise the page is split into rows, top to bottom. Consecutive rows that are themselves
  multi-column are merged back first, so that paragraph gaps that happen to line up across two
  columns do not interleave the columns (L1 R1 L2 R2); a full-width title or footer still
  separates the column sections above and below it.
* Blocks that no cut separates are read top to bottom, then left to right.

The result depends only on the boxes, not on the order the blocks arrive in.
"""

from __future__ import annotations

from manuscribe.model import Block

MARGIN_RATIO = 0.4  # a group narrower than this fraction of the widest one may be a margin
MARGIN_PAGE_RATIO = 0.25  # ... and narrower than this fraction of the page
SIDE_BY_SIDE = 0.3  # vertical overlap, as a fraction of the shorter group, to count as columns


def order_blocks(blocks: list[Block], page_width: int) -> list[Block]:
    """The blocks in reading order (a new list; the blocks themselves are not changed)."""
    return _order(sorted(blocks, key=_key), page_width)


def _key(block: Block) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = block.bbox
    return (y0, x0, y1, x1)


def _extent(blocks: list[Block], axis: int) -> tuple[int, int]:
    return min(b.bbox[axis] for b in blocks), max(b.bbox[axis + 2] for b in blocks)


def _split(blocks: list[Block], axis: int) -> list[list[Block]]:
    """Groups separated by empty strips along `axis` (0: gutters between columns, 1: rows)."""
    ordered = sorted(blocks, key=lambda b: (b.bbox[axis], b.bbox[axis + 2]))
    groups: list[list[Block]] = []
    reach = None
    for block in ordered:
        start, end = block.bbox[axis], block.bbox[axis + 2]
        if reach is None or start >= reach:
            groups.append([block])
            reach = end
        else:
            groups[-1].append(block)
            reach = max(reach, end)
    return groups


def _side_by_side(columns: list[list[Block]]) -> bool:
    """Whether some two neighbouring column groups overlap vertically."""
    for left, right in zip(columns, columns[1:], strict=False):
        (top_l, bottom_l), (top_r, bottom_r) = _extent(left, 1), _extent(right, 1)
        overlap = min(bottom_l, bottom_r) - max(top_l, top_r)
        shorter = min(bottom_l - top_l, bottom_r - top_r)
        if overlap > 0 and overlap >= SIDE_BY_SIDE * max(shorter, 1):
            return True
    return False


def _is_multi_column(blocks: list[Block]) -> bool:
    columns = _split(blocks, 0)
    return len(columns) > 1 and _side_by_side(columns)


def _split_margins(
    columns: list[list[Block]], page_width: int
) -> tuple[list[list[Block]], list[Block]]:
    """(main columns left to right, blocks of narrow edge columns: margin notes)."""
    widths = [_extent(c, 0)[1] - _extent(c, 0)[0] for c in columns]
    widest = max(widths)

    def marginal(index: int) -> bool:
        at_edge = index in (0, len(columns) - 1)
        narrow = widths[index] < MARGIN_RATIO * widest
        return at_edge and narrow and widths[index] < MARGIN_PAGE_RATIO * max(page_width, 1)

    main = [c for i, c in enumerate(columns) if not marginal(i)]
    notes = [b for i, c in enumerate(columns) if marginal(i) for b in c]
    return main, notes


def _place_notes(main: list[Block], notes: list[Block]) -> list[Block]:
    """Each margin note right after the main block it stands beside (most vertical overlap)."""
    after: dict[int, list[Block]] = {}
    for note in sorted(notes, key=_key):
        top, bottom = note.bbox[1], note.bbox[3]

        def overlap(index: int, top: int = top, bottom: int = bottom) -> int:
            return min(bottom, main[index].bbox[3]) - max(top, main[index].bbox[1])

        best = max(range(len(main)), key=lambda i: (overlap(i), -i))
        if overlap(best) <= 0:  # beside nothing: after the last block that starts above it
            above = [i for i in range(len(main)) if main[i].bbox[1] <= top]
            best = above[-1] if above else -1
        after.setdefault(best, []).append(note)
    result = list(after.get(-1, []))
    for index, block in enumerate(main):
        result.append(block)
        result.extend(after.get(index, []))
    return result


def _order(blocks: list[Block], page_width: int) -> list[Block]:
    if len(blocks) <= 1:
        return list(blocks)
    columns = _split(blocks, 0)
    if len(columns) > 1 and _side_by_side(columns):
        main, notes = _split_margins(columns, page_width)
        ordered = [b for c in main for b in _order(c, page_width)]
        return _place_notes(ordered, notes) if notes else ordered
    rows = _split(blocks, 1)
    if len(rows) > 1:
        merged: list[list[Block]] = []
        for row in rows:
            if merged and _is_multi_column(row) and _is_multi_column(merged[-1]):
                merged[-1] = merged[-1] + row
            else:
                merged.append(row)
        groups = merged if len(merged) > 1 else rows  # each a strict subset: recursion ends
        return [b for group in groups for b in _order(group, page_width)]
    if len(columns) > 1:
        return [b for c in columns for b in _order(c, page_width)]
    return sorted(blocks, key=_key)
