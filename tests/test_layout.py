"""Grouping lines into blocks, reading order within blocks, and the stage that builds pages."""

from __future__ import annotations

from manuscribe.engines.base import PageResult
from manuscribe.layout import build_blocks, group_lines, horizontal_overlap
from manuscribe.model import Line
from manuscribe.stages import _to_page, page_confidence
from tests.conftest import text_page


def line(x0, y0, x1, y1, text="word", confidence=0.9) -> Line:
    return Line(bbox=(x0, y0, x1, y1), text=text, confidence=confidence)


def test_paragraphs_split_on_large_gaps_and_columns():
    lines = [
        line(100, 100, 500, 140, "first para a"),
        line(100, 150, 480, 190, "first para b"),
        line(100, 400, 500, 440, "second para"),  # gap of 5 line heights
        line(900, 100, 1300, 140, "right column a"),  # no horizontal overlap
        line(900, 150, 1300, 190, "right column b"),
    ]
    groups = group_lines(lines)
    texts = sorted([[lines[i].text for i in g] for g in groups])
    assert texts == [
        ["first para a", "first para b"],
        ["right column a", "right column b"],
        ["second para"],
    ]


def test_fragments_on_one_row_read_left_to_right():
    lines = [line(400, 100, 700, 140, "world"), line(100, 104, 380, 142, "hello"),
             line(100, 150, 700, 190, "next line")]  # fmt: skip
    (group,) = group_lines(lines)
    assert [lines[i].text for i in group] == ["hello", "world", "next line"]


def test_build_blocks_ids_text_confidence_and_bbox():
    lines = [line(100, 100, 500, 140, "ab", 1.0), line(120, 150, 400, 190, "abcdef", 0.5)]
    (block,) = build_blocks(lines, group_lines(lines), page_number=3, page_width=2000)
    assert block.id == "p3-b1"
    assert block.text == "ab\nabcdef"
    assert block.bbox == (100, 100, 500, 190)
    assert abs(block.confidence - (1.0 * 2 + 0.5 * 6) / 8) < 1e-3  # weighted by text length


def test_engine_blocks_are_kept_and_empty_input_gives_empty_page():
    lines = [line(0, 0, 10, 10, "a"), line(0, 100, 10, 110, "b"), line(0, 12, 10, 20, "c")]
    page = _to_page(PageResult(lines=lines, blocks=[[0, 2], [1]]), 1, text_page([]), 300)
    assert [b.text for b in page.blocks] == ["a\nc", "b"]
    empty = _to_page(PageResult(lines=[]), 2, text_page([]), 300)
    assert empty.blocks == [] and page_confidence(empty) == 0.0


def test_horizontal_overlap_is_relative_to_the_narrower_box():
    assert horizontal_overlap((0, 0, 100, 1), (50, 0, 60, 1)) == 1.0
    assert horizontal_overlap((0, 0, 100, 1), (200, 0, 300, 1)) == 0.0
