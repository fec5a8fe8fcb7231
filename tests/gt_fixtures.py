"""Ground-truth exports built from real dev pages, as eScriptorium (ALTO v4) and Transkribus (PAGE
2019) write them: the XML names the image, which lies beside it. Used to test reading and a few
training steps; no model trained here is kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.sax.saxutils import quoteattr

ALTO_NS = {
    4: "http://www.loc.gov/standards/alto/ns-v4#",
    3: "http://www.loc.gov/standards/alto/ns-v3#",
    2: "http://www.loc.gov/standards/alto/ns-v2#",
}
PAGE_NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"


def _polygon(bbox) -> list[tuple[int, int]]:
    x0, y0, x1, y1 = bbox
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def write_alto(page: dict, image_name: str, path: Path, version: int = 4, scale: float = 1.0):
    """ALTO with a polygon per line (v4) or boxes only (v2/v3); coordinates x `scale`, as an
    export of a larger scan than the image beside it would have."""
    lines = []
    for index, line in enumerate(page["lines"]):
        x0, y0, x1, y1 = (round(v * scale) for v in line["bbox"])
        shape = ""
        if version == 4:
            points = " ".join(f"{x} {y}" for x, y in _polygon((x0, y0, x1, y1)))
            shape = f'<Shape><Polygon POINTS="{points}"/></Shape>'
        words = line["text"].split()
        strings = "<SP/>".join(f"<String CONTENT={quoteattr(w)}/>" for w in words)
        lines.append(
            f'<TextLine ID="l{index}" HPOS="{x0}" VPOS="{y0}" WIDTH="{x1 - x0}" '
            f'HEIGHT="{y1 - y0}">{shape}{strings}</TextLine>'
        )
    width, height = round(page["width"] * scale), round(page["height"] * scale)
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><alto xmlns="{ALTO_NS[version]}"><Description>'
        "<MeasurementUnit>pixel</MeasurementUnit><sourceImageInformation>"
        f"<fileName>{image_name}</fileName></sourceImageInformation></Description><Layout>"
        f'<Page WIDTH="{width}" HEIGHT="{height}" PHYSICAL_IMG_NR="1" ID="p1"><PrintSpace>'
        f'<TextBlock ID="b1">{"".join(lines)}</TextBlock></PrintSpace></Page></Layout></alto>',
        encoding="utf-8",
    )


def write_page_xml(page: dict, image_name: str, path: Path) -> None:
    lines = []
    for index, line in enumerate(page["lines"]):
        points = " ".join(f"{x},{y}" for x, y in _polygon(line["bbox"]))
        text = line["text"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        lines.append(
            f'<TextLine id="l{index}"><Coords points="{points}"/>'
            f"<TextEquiv><Unicode>{text}</Unicode></TextEquiv></TextLine>"
        )
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><PcGts xmlns="{PAGE_NS}"><Page '
        f'imageFilename="{image_name}" imageWidth="{page["width"]}" '
        f'imageHeight="{page["height"]}"><TextRegion id="r1">{"".join(lines)}</TextRegion>'
        "</Page></PcGts>",
        encoding="utf-8",
    )


def export_pages(dataset: Path, page_ids: list[str], folder: Path, fmt: str = "alto") -> Path:
    """A folder of ground truth for the given dev pages: <id>.xml beside <id>.jpg."""
    folder.mkdir(parents=True, exist_ok=True)
    for page_id in page_ids:
        page = json.loads((dataset / f"{page_id}.json").read_text())
        shutil.copy(dataset / f"{page_id}.jpg", folder / f"{page_id}.jpg")
        if fmt == "alto":
            write_alto(page, f"{page_id}.jpg", folder / f"{page_id}.xml")
        else:
            write_page_xml(page, f"{page_id}.jpg", folder / f"{page_id}.xml")
    return folder
