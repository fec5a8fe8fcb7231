"""Reading order on single-column, multi-column and annotated pages."""

from __future__ import annotations

import random

import pytest

from manuscribe.model import Block
from manuscribe.reading_order import order_blocks

WIDTH = 1240


def box(name: str, x0: int, y0: int, x1: int, y1: int) -> Block:
    return Block(id=name, bbox=(x0, y0, x1, y1), lines=[], text=name, confidence=1.0)


def ids(blocks: list[Block]) -> list[str]:
    return [b.id for b in blocks]


def shuffled(blocks: list[Block], seed: int) -> list[Block]:
    copy = list(blocks)
    random.Random(seed).shuffle(copy)
    return copy


TWO_COLUMNS_ALIGNED = [  # paragraph gaps at the same height in both columns
    box("L1", 80, 200, 580, 400),
    box("L2", 80, 450, 580, 700),
    box("R1", 660, 200, 1160, 400),
    box("R2", 660, 450, 1160, 700),
]
TITLE_COLUMNS_FOOTER = [
    box("title", 300, 40, 940, 120),
    *TWO_COLUMNS_ALIGNED,
    box("footer", 80, 1600, 1160, 1680),
]


def test_empty_and_single() -> None:
    assert order_blocks([], WIDTH) == []
    only = box("a", 10, 10, 20, 20)
    assert order_blocks([only], WIDTH) == [only]


def test_single_column_top_to_bottom() -> None:
    blocks = [
        box(f"p{n}", 100 + n * 7, 100 + n * 200, 1100 - n * 5, 260 + n * 200) for n in range(5)
    ]
    assert ids(order_blocks(shuffled(blocks, 1), WIDTH)) == ["p0", "p1", "p2", "p3", "p4"]


def test_two_columns_are_not_interleaved_when_gaps_line_up() -> None:
    assert ids(order_blocks(shuffled(TWO_COLUMNS_ALIGNED, 2), WIDTH)) == ["L1", "L2", "R1", "R2"]


def test_title_and_footer_span_the_columns() -> None:
    expected = ["title", "L1", "L2", "R1", "R2", "footer"]
    for seed in range(10):  # the order depends on the boxes only, not on the input order
        assert ids(order_blocks(shuffled(TITLE_COLUMNS_FOOTER, seed), WIDTH)) == expected


def test_column_sections_separated_by_a_full_width_block() -> None:
    blocks = [
        box("a-left", 80, 100, 580, 500),
        box("a-right", 660, 100, 1160, 480),
        box("middle", 80, 560, 1160, 700),
        box("b-left", 80, 760, 580, 1200),
        box("b-right", 660, 760, 1160, 1000),
        box("b-right2", 660, 1050, 1160, 1200),
    ]
    assert ids(order_blocks(shuffled(blocks, 3), WIDTH)) == [
        "a-left",
        "a-right",
        "middle",
        "b-left",
        "b-right",
        "b-right2",
    ]


def test_three_uneven_columns() -> None:
    blocks = [
        box("c1", 60, 100, 400, 900),
        box("c2a", 440, 100, 800, 300),
        box("c2b", 440, 350, 800, 900),
        box("c3", 840, 120, 1180, 880),
    ]
    assert ids(order_blocks(shuffled(blocks, 4), WIDTH)) == ["c1", "c2a", "c2b", "c3"]


@pytest.mark.parametrize("side", ["left", "right"])
def test_margin_note_follows_the_paragraph_it_annotates(side: str) -> None:
    note = (20, 340, 160, 420) if side == "left" else (1090, 340, 1230, 420)
    blocks = [
        box("p1", 200, 100, 1060, 300),
        box("p2", 200, 330, 1060, 600),
        box("note", *note),
        box("p3", 200, 650, 1060, 900),
    ]
    assert ids(order_blocks(shuffled(blocks, 5), WIDTH)) == ["p1", "p2", "note", "p3"]


def test_blocks_that_do_not_stand_side_by_side_read_top_to_bottom() -> None:
    # A date at the top right, then the addressee lower on the left: not two columns.
    blocks = [box("address", 80, 300, 500, 420), box("date", 800, 100, 1150, 160)]
    assert ids(order_blocks(blocks, WIDTH)) == ["date", "address"]


def test_overlapping_blocks_fall_back_to_top_then_left() -> None:
    blocks = [box("b", 300, 105, 900, 200), box("a", 100, 100, 700, 180)]
    assert ids(order_blocks(blocks, WIDTH)) == ["a", "b"]


def test_random_layouts_keep_every_block_once() -> None:
    rng = random.Random(7)
    for _ in range(200):
        blocks = []
        for n in range(rng.randint(1, 12)):
            x0, y0 = rng.randint(0, 1100), rng.randint(0, 1600)
            blocks.append(box(f"b{n}", x0, y0, x0 + rng.randint(1, 600), y0 + rng.randint(1, 300)))
        ordered = order_blocks(blocks, WIDTH)
        assert sorted(ids(ordered)) == sorted(ids(blocks))
        assert ids(order_blocks(list(reversed(blocks)), WIDTH)) == ids(ordered) or len(
            {b.bbox for b in blocks}
        ) < len(blocks)
