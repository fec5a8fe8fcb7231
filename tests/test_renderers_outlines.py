"""ALTO, PAGE and hOCR with line baselines and polygons: schema validity, the points written,
degenerate shapes dropped, clipping, and a round trip through the ground-truth reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from tests.render_fixtures import (
    document,
    french_document,
    french_page,
    mixed_document,
    outline,
    two_column_page,
    with_outlines,
)
from tests.test_renderers_xml import (
    ALTO,
    PC,
    alto_line_text,
    hocr_report,
    page_files,
    render,
    schema,
)


def points(value: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in pair.split(",")) for pair in value.split()]


def outlined_document():
    """The French letter (words and no words, corrected and not) with a baseline and a polygon
    on every line; page 2 has one line with only a baseline and one with only a polygon."""
    second = two_column_page(2)
    left = second.blocks[1].lines
    left[0].baseline = outline(left[0].bbox)[0]
    left[1].polygon = outline(left[1].bbox)[1]
    return document([with_outlines(french_page(1)), second])


def test_alto_writes_baselines_as_points_and_polygons_as_shapes() -> None:
    doc = outlined_document()
    root = etree.fromstring(render("alto", doc))
    schema("alto-4-4.xsd").assertValid(root)
    assert root.get("SCHEMAVERSION") == "4.4"  # BASELINE is a points list since ALTO 4.2
    pages = root.findall(f"{ALTO}Layout/{ALTO}Page")
    for page, xml_page in zip(doc.pages, pages, strict=True):
        written = xml_page.findall(f".//{ALTO}TextLine")
        lines = [ln for block in page.blocks for ln in block.lines]
        assert len(written) == len(lines)
        for line, element in zip(lines, written, strict=True):
            box = [int(element.get(k)) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT")]
            x0, y0, x1, y1 = line.bbox
            assert box == [x0, y0, x1 - x0, y1 - y0]  # the box stays the line's bbox
            baseline = element.get("BASELINE")
            assert (points(baseline) if baseline else []) == line.baseline
            shape = element.findall(f"{ALTO}Shape")
            if line.polygon:
                assert element[0].tag == f"{ALTO}Shape" and len(shape) == 1  # first, once
                (polygon,) = shape[0]
                assert polygon.tag == f"{ALTO}Polygon"
                assert points(polygon.get("POINTS")) == line.polygon
            else:
                assert shape == []
            assert alto_line_text(element)  # the Strings follow the Shape
    # Only the line geometry is new: blocks and words keep their boxes.
    first = pages[0].find(f".//{ALTO}TextBlock")
    assert first.find(f"{ALTO}Shape") is None
    assert all(s.find(f"{ALTO}Shape") is None for s in first.iter(f"{ALTO}String"))


def test_page_writes_polygons_as_coords_and_the_engines_baseline() -> None:
    doc = outlined_document()
    files = page_files(doc)
    for page, data in zip(doc.pages, files, strict=True):
        root = etree.fromstring(data)
        schema("pagecontent-2019-07-15.xsd").assertValid(root)
        written = root.findall(f".//{PC}TextLine")
        lines = [ln for block in page.blocks for ln in block.lines]
        assert len(written) == len(lines)
        for line, element in zip(lines, written, strict=True):
            children = [etree.QName(c).localname for c in element]
            assert children[:2] == ["Coords", "Baseline"]  # the schema's sequence order
            coords = points(element.find(f"{PC}Coords").get("points"))
            baseline = points(element.find(f"{PC}Baseline").get("points"))
            x0, y0, x1, y1 = line.bbox
            if line.polygon:
                assert coords == line.polygon
            else:
                assert coords == [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
            if line.baseline:
                assert baseline == line.baseline
            else:  # estimated, as before: straight, at 80 % of the box
                y = y0 + round((y1 - y0) * 0.8)
                assert baseline == [(x0, y), (x1, y)]
        # Region Coords stay the block's box.
        region = root.find(f".//{PC}TextRegion/{PC}Coords")
        bx0, by0, bx1, by1 = page.blocks[0].bbox
        assert points(region.get("points")) == [(bx0, by0), (bx1, by0), (bx1, by1), (bx0, by1)]


def xml_outputs(doc) -> dict[str, bytes]:
    return {"alto": render("alto", doc), **dict(enumerate(page_files(doc)))}


DEGENERATE = {
    "one-point baseline, two-point polygon": ([(130, 250)], [(120, 200), (900, 260)]),
    "one point repeated": ([(130, 250), (130, 250)], [(120, 200)] * 4),
    "polygon on a straight line": ([], [(120, 200), (500, 230), (880, 260)]),
    "two points, closed": ([], [(120, 200), (900, 260), (120, 200)]),
    "all outside the page, clipped flat": ([(-40, -5), (-10, -9)], [(-9, 10), (-5, 20), (-1, 30)]),
}


@pytest.mark.parametrize("case", DEGENERATE)
def test_degenerate_baselines_and_polygons_are_dropped(case: str, monkeypatch) -> None:
    """A baseline needs 2 distinct points, a polygon 3 and an area (PAGE: 'at least 3 points
    are required to span an area'); otherwise the line comes out exactly as without them."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    plain = french_document()
    broken = french_document()
    line = broken.pages[0].blocks[0].lines[0]
    line.baseline, line.polygon = DEGENERATE[case]
    assert xml_outputs(broken) == xml_outputs(plain)


def test_outlines_are_clipped_to_the_page_and_closing_points_dropped() -> None:
    doc = french_document()
    width = doc.pages[0].width
    line = doc.pages[0].blocks[1].lines[0]
    line.baseline = [(-12, 470), (600, 475), (600, 475), (width + 30, 480)]
    line.polygon = [(-5, 410), (width + 8, 405), (width + 8, 490), (-5, 485), (-5, 410)]
    expected_baseline = [(0, 470), (600, 475), (width, 480)]
    expected_polygon = [(0, 410), (width, 405), (width, 490), (0, 485)]
    alto = etree.fromstring(render("alto", doc))
    schema("alto-4-4.xsd").assertValid(alto)
    element = alto.find(f".//{ALTO}TextBlock[@ID='p1-b2']/{ALTO}TextLine")
    assert points(element.get("BASELINE")) == expected_baseline
    assert points(element.find(f"{ALTO}Shape/{ALTO}Polygon").get("POINTS")) == expected_polygon
    page = etree.fromstring(page_files(doc)[0])
    schema("pagecontent-2019-07-15.xsd").assertValid(page)  # PAGE points cannot be negative
    element = page.findall(f".//{PC}TextLine")[2]
    assert points(element.find(f"{PC}Coords").get("points")) == expected_polygon
    assert points(element.find(f"{PC}Baseline").get("points")) == expected_baseline


def test_polygons_survive_a_round_trip_through_the_ground_truth_reader(tmp_path: Path) -> None:
    """What eScriptorium/Transkribus import, `manuscribe train` reads back: the same polygons."""
    from PIL import Image

    from manuscribe.training.groundtruth import read_page

    doc = document([with_outlines(french_page(1))], name="letter.png")
    page = doc.pages[0]
    Image.new("L", (page.width, page.height), 255).save(tmp_path / "letter.png")
    (tmp_path / "letter.alto.xml").write_bytes(render("alto", doc))
    (tmp_path / "letter.page.xml").write_bytes(render("page", doc))
    expected = [[tuple(map(float, p)) for p in ln.polygon] for b in page.blocks for ln in b.lines]
    for name in ("letter.alto.xml", "letter.page.xml"):
        read = read_page(tmp_path / name)
        assert read.error is None and read.problems == [], name
        assert [ln.polygon for ln in read.lines] == expected, name


def test_hocr_draws_lines_with_outlines_by_their_boxes(tmp_path: Path) -> None:
    """hOCR has no baseline polylines or line polygons: the output is exactly as without."""
    plain = mixed_document()
    outlined = mixed_document()
    for page in outlined.pages:
        with_outlines(page)
    data = render("hocr", outlined)
    assert data == render("hocr", plain)
    assert hocr_report(data, tmp_path).is_valid()
