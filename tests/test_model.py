"""The document model's JSON: line baselines and polygons, and JSON written before them."""

from __future__ import annotations

import json

from manuscribe.model import Document, Line
from manuscribe.renderers import RenderContext, get_renderer
from tests.render_fixtures import french_document, with_outlines


def test_json_without_baselines_and_polygons_still_loads() -> None:
    data = json.loads(french_document().model_dump_json())
    for page in data["pages"]:
        for block in page["blocks"]:
            for line in block["lines"]:
                del line["baseline"], line["polygon"]  # as written before the fields existed
    document = Document.model_validate(data)
    lines = [ln for b in document.pages[0].blocks for ln in b.lines]
    assert lines and all(ln.baseline == [] and ln.polygon == [] for ln in lines)
    assert document == french_document()


def test_baselines_and_polygons_round_trip_through_the_json_output() -> None:
    document = french_document()
    with_outlines(document.pages[0])
    data = get_renderer("json").render(document, RenderContext())
    line = json.loads(data)["pages"][0]["blocks"][0]["lines"][0]
    assert line["baseline"] == [list(p) for p in document.pages[0].blocks[0].lines[0].baseline]
    assert len(line["polygon"]) == 6 and all(len(p) == 2 for p in line["polygon"])
    assert Document.model_validate_json(data) == document


def test_points_are_integer_pairs() -> None:
    line = Line.model_validate(
        {"bbox": [0, 0, 10, 5], "text": "a", "confidence": 1, "baseline": [[0, 4], [10, 4]]}
    )
    assert line.baseline == [(0, 4), (10, 4)] and line.polygon == []
