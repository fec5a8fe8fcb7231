"""Ground truth for `manuscribe eval` and the review report: a folder of pages in the dataset's
JSON format, or of ALTO / PAGE XML as eScriptorium and Transkribus export a collection.

A prediction `<name>.json` is scored against `<name>.json` in the folder, else against the XML of
the same stem anywhere under it, or the XML that names an image of that stem (exports mostly name
the XML after the image, and the image is what `manuscribe run` was given). An XML file is read
with the training reader (`read_page`), so the lines, their boxes and the text normalisation are
the ones training uses; its image is not needed, only the page size.
"""

from __future__ import annotations

import json
import re
from pathlib import Path


class TruthFolder:
    """Ground-truth pages by name; XML files that cannot be scored are kept in `skipped`."""

    def __init__(self, root: Path):
        self.root = root
        self.skipped: list[tuple[Path, str]] = []
        self._xml: dict[str, list[Path]] | None = None

    def page(self, name: str) -> dict | None:
        """The page in the dataset's format (id, language, width, height, lines), or None.
        `name` is the output's path relative to its folder, without suffix ("doc1/0001"): of
        several XML files of the same stem (a Transkribus export of many documents names each
        document's pages 0001.xml ...), the one in the same folder, or its page/ subfolder."""
        stem = Path(name).name
        json_path = self.root / f"{stem}.json"
        if json_path.is_file():
            return json.loads(json_path.read_text(encoding="utf-8"))
        found = self._xml_files().get(stem, [])
        if len(found) > 1:
            folder = Path(name).parent
            found = [p for p in found if folder in _folders(p.relative_to(self.root))]
        if len(found) > 1:
            names = ", ".join(str(p.relative_to(self.root)) for p in found)
            self.skipped.append((Path(name), f"{len(found)} ground-truth files match: {names}"))
        if len(found) != 1:
            return None
        return self._from_xml(stem, found[0])

    def _xml_files(self) -> dict[str, list[Path]]:
        if self._xml is None:
            from manuscribe.training.groundtruth import IMAGE_SUFFIXES, find_xml_files

            found = find_xml_files([self.root]) if self.root.is_dir() else []
            self._xml = {}
            for path in found:  # f1.xml, or f1.jpg.xml as some tools name it
                stem = Path(path.stem)
                if stem.suffix.lower() in IMAGE_SUFFIXES:
                    stem = stem.with_suffix("")
                names = {stem.name, _image_stem(path)} - {""}
                for name in names:  # and by the image it names, when that is called otherwise
                    self._xml.setdefault(name, []).append(path)
        return self._xml

    def _from_xml(self, name: str, xml: Path) -> dict | None:
        from manuscribe.training.groundtruth import read_page

        page = read_page(xml, need_image=False)
        if page.error:
            self.skipped.append((xml, page.error))
            return None
        lines = [{"text": ln.text, "bbox": list(ln.bbox), "type": ln.kind} for ln in page.lines]
        return {
            "id": name,
            "language": page.language or "und",
            "width": page.width,
            "height": page.height,
            "lines": lines,
            "text": "\n".join(ln["text"] for ln in lines),
            "source_xml_path": str(xml),
        }


_IMAGE_NAME = re.compile(rb'imageFilename="([^"]+)"|<(?:\w+:)?fileName>\s*([^<]+?)\s*</')


def _image_stem(xml: Path) -> str:
    """The stem of the image an ALTO (`fileName`) or PAGE (`imageFilename`) file names, from its
    head, where both formats put it; "" if it names none."""
    try:
        with xml.open("rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return ""
    match = _IMAGE_NAME.search(head)
    if not match:
        return ""
    name = (match.group(1) or match.group(2)).decode("utf-8", "replace").replace("\\", "/")
    return Path(name).stem


def _folders(relative_xml: Path) -> tuple[Path, ...]:
    """The output folders an XML's page can come from: its own, or the one above its page/,
    alto/ or similar subfolder (where exports keep the images)."""
    return relative_xml.parent, relative_xml.parent.parent
