"""Read line-level ground truth from ALTO (v2-v4) and PAGE XML, as eScriptorium and Transkribus
export it: the image named in the XML lies beside it (or one folder up, as some exports do).
The METS and metadata files those exports put beside the pages are not ground truth: a folder's
are passed over, not reported as bad files.

Problems are reported, never raised: a page that cannot be used carries `error`, a line that cannot
be used is left out with a note in `problems`, so one bad file never stops a training run.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from PIL import Image

from manuscribe.textnorm import normalise

BBox = tuple[int, int, int, int]
Point = tuple[float, float]

_NUMBERS = re.compile(r"-?\d+(?:\.\d+)?")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".jp2", ".webp")


@dataclass
class GtLine:
    text: str  # normalised the way `manuscribe eval` scores (NFC, no `^`, struck-out unwrapped)
    polygon: list[Point]  # in image pixels
    kind: str = ""  # the line type label, when the XML gives one

    @property
    def bbox(self) -> BBox:
        xs = [p[0] for p in self.polygon]
        ys = [p[1] for p in self.polygon]
        return int(min(xs)), int(min(ys)), int(round(max(xs))), int(round(max(ys)))


@dataclass
class GtPage:
    xml_path: Path
    image_path: Path | None
    lines: list[GtLine] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # lines left out, and why
    error: str | None = None  # the whole page is unusable
    width: int = 0  # of the image (or as the XML declares it, when the image is not needed)
    height: int = 0
    language: str = ""  # ISO 639-1, when the XML says (PAGE primaryLanguage, ALTO LANG)


def clean_text(text: str) -> str:
    """Training text: the scoring normalisation, plus signature marks (`¥`) dropped."""
    text = unicodedata.normalize("NFC", text).replace("¥", "")
    return normalise(text)


def _points(value: str) -> list[Point]:
    numbers = [float(n) for n in _NUMBERS.findall(value or "")]
    return list(zip(numbers[0::2], numbers[1::2], strict=False))


def _box_polygon(x: float, y: float, w: float, h: float) -> list[Point]:
    return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _find_image(xml_path: Path, name: str) -> Path | None:
    """The image the XML names: at the relative path it gives, or beside the XML or one folder
    up; then the same name with another image suffix (an export that converted the TIFFs the
    XML names to JPEG); then an image with the XML's own stem. Names match case-insensitively
    (`f1.JPG` for `f1.jpg`), as they do on the Windows machines many exports come from."""
    folders = (xml_path.parent, xml_path.parent.parent)
    name = name.replace("\\", "/")
    if name and not name.startswith(("/", "http:", "https:", "file:")):
        exact = xml_path.parent / name
        if exact.is_file():
            return exact
    stems = [Path(name).stem] if name else []
    stems.append(xml_path.name.split(".")[0])
    wanted = [Path(name).name] if name else []
    wanted += [f"{stem}{suffix}" for stem in stems for suffix in IMAGE_SUFFIXES]
    for want in wanted:  # as written first: no folder listing on the usual export
        for folder in folders:
            if (folder / want).is_file():
                return folder / want
    listings = [_files_by_lower_name(folder) for folder in folders]  # each folder listed once
    for want in wanted:
        for files in listings:
            found = files.get(want.lower())
            if found is not None:
                return found
    return None


def _files_by_lower_name(folder: Path) -> dict[str, Path]:
    try:
        return {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    except OSError:
        return {}


def _alto_lines(root, scale: tuple[float, float]) -> list[tuple[str, list[Point], str]]:
    labels = {
        tag.get("ID"): tag.get("LABEL", "")
        for tag in root.iter("{*}OtherTag", "{*}LayoutTag", "{*}StructureTag")
    }
    out = []
    for line in root.iter("{*}TextLine"):
        strings = [s.get("CONTENT", "") for s in line.iter("{*}String")]
        text = " ".join(s for s in strings if s)
        polygon = []
        shape = line.find("{*}Shape/{*}Polygon")
        if shape is not None:
            polygon = _points(shape.get("POINTS", ""))
        if len(polygon) < 3 and line.get("WIDTH") is not None:
            box = [float(line.get(k, 0) or 0) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT")]
            polygon = _box_polygon(*box)
        polygon = [(x * scale[0], y * scale[1]) for x, y in polygon]
        kind = " ".join(labels.get(ref, "") for ref in (line.get("TAGREFS") or "").split())
        out.append((text, polygon, kind.strip()))
    return out


def _page_lines(root, scale: tuple[float, float]) -> list[tuple[str, list[Point], str]]:
    out = []
    for line in root.iter("{*}TextLine"):
        coords = line.find("{*}Coords")
        polygon = _points(coords.get("points", "")) if coords is not None else []
        polygon = [(x * scale[0], y * scale[1]) for x, y in polygon]
        text = _page_text(line)
        if not text:  # some tools transcribe only the words
            text = " ".join(_page_text(word) for word in line.iterfind("{*}Word"))
        kind = ""
        match = re.search(r"type:\s*([^;}]+)", line.get("custom", ""))
        if match:
            kind = match.group(1).strip()
        out.append((text, polygon, kind))
    return out


def _page_text(element) -> str:
    """An element's own transcription: of several TextEquivs, the one with the lowest index
    (PAGE's ranking of alternative readings; one without an index comes first)."""
    best, best_rank = "", None
    for equiv in element.iterfind("{*}TextEquiv"):
        try:
            rank = int(equiv.get("index", "-1"))
        except ValueError:
            rank = -1
        unicode = equiv.find("{*}Unicode")
        if unicode is not None and unicode.text and (best_rank is None or rank < best_rank):
            best, best_rank = unicode.text, rank
    return best.strip()


# what the XML may give as a language: PAGE names it, ALTO gives a code (639-1, -2 or -3)
_LANGUAGES = {
    "fr": ("french", "fre", "fra"), "en": ("english", "eng"), "de": ("german", "ger", "deu"),
    "la": ("latin", "lat"), "es": ("spanish", "spa"), "it": ("italian", "ita"),
    "nl": ("dutch", "dut", "nld"), "pt": ("portuguese", "por"),
}  # fmt: skip
_LANGUAGE_CODES = {name: code for code, names in _LANGUAGES.items() for name in (code, *names)}


def _language(root, kind: str) -> str:
    if kind == "alto":
        values = root.xpath("//@LANG | //@xml:lang")
    else:
        regions = "//*[local-name()='Page' or local-name()='TextRegion']"
        values = root.xpath(f"{regions}/@primaryLanguage")
    for value in values:
        code = _LANGUAGE_CODES.get(str(value).strip().lower().split("-")[0])
        if code:
            return code
    return ""


def read_page(xml_path: Path, image_path: Path | None = None, need_image: bool = True) -> GtPage:
    """Parse one ALTO or PAGE file; coordinates are scaled to the image's real size. Without
    `need_image` (scoring needs only the boxes), a missing image is no error: the coordinates
    then stay in the page size the XML declares."""
    page = GtPage(xml_path=xml_path, image_path=image_path)
    try:
        root = etree.parse(str(xml_path), etree.XMLParser(huge_tree=True)).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        page.error = f"XML unreadable: {exc}"
        return page
    kind = _local(root.tag).lower()
    if kind not in ("alto", "pcgts"):
        page.error = f"neither ALTO nor PAGE XML (root element <{_local(root.tag)}>)"
        return page
    xml_page = root.find(".//{*}Page")
    if kind == "alto":
        unit = (root.findtext(".//{*}MeasurementUnit") or "pixel").strip()
        name = root.findtext(".//{*}sourceImageInformation/{*}fileName") or ""
        declared = (xml_page.get("WIDTH"), xml_page.get("HEIGHT")) if xml_page is not None else ()
    else:
        unit = "pixel"
        name = xml_page.get("imageFilename", "") if xml_page is not None else ""
        declared = (
            (xml_page.get("imageWidth"), xml_page.get("imageHeight"))
            if xml_page is not None
            else ()
        )
    try:
        w, h = (float(v) for v in declared)
    except (TypeError, ValueError):
        w = h = 0.0
    # mm10 / inch1200 coordinates map onto the image through the page size, in the same unit
    if unit != "pixel" and not (w > 0 and h > 0):
        page.error = f"ALTO MeasurementUnit {unit!r} without the page's WIDTH and HEIGHT"
        return page
    page.language = _language(root, kind)
    page.image_path = image_path or _find_image(xml_path, name.strip())
    if page.image_path is None or not page.image_path.is_file():
        page.image_path = None
        if need_image or not (w > 0 and h > 0):
            page.error = f"image missing (the XML names {name.strip() or 'no image'!r})"
            return page
        width, height = round(w), round(h)
    else:
        try:
            with Image.open(page.image_path) as image:
                width, height = image.size
        except (OSError, Image.DecompressionBombError) as exc:
            page.error = f"image unreadable: {exc}"
            return page
    page.width, page.height = width, height
    scale = (width / w, height / h) if w > 0 and h > 0 else (1.0, 1.0)
    raw = _alto_lines(root, scale) if kind == "alto" else _page_lines(root, scale)
    if not raw:
        page.error = "no text lines in the XML"
        return page
    for index, (text, polygon, line_kind) in enumerate(raw, start=1):
        text = clean_text(text)
        where = f"line {index}"
        if not text:
            page.problems.append(f"{where}: empty transcription")
            continue
        if len(polygon) < 3:
            page.problems.append(f"{where}: no polygon or box")
            continue
        clipped = [(min(max(x, 0), width), min(max(y, 0), height)) for x, y in polygon]
        line = GtLine(text=text, polygon=clipped, kind=line_kind)
        x0, y0, x1, y1 = line.bbox
        outside = GtLine(text=text, polygon=polygon).bbox
        inside_area = max(0, x1 - x0) * max(0, y1 - y0)
        full_area = max(1, (outside[2] - outside[0]) * (outside[3] - outside[1]))
        if inside_area < 0.5 * full_area or x1 - x0 < 2 or y1 - y0 < 2:
            page.problems.append(f"{where}: polygon outside the page ({width}x{height})")
            continue
        page.lines.append(line)
    if not page.lines:
        page.error = "no usable lines" + (f" ({page.problems[0]})" if page.problems else "")
    return page


def unpack_archives(paths: list[Path], into: Path) -> list[Path]:
    """The given paths with each ZIP file (eScriptorium and Transkribus hand their exports out as
    ZIPs) replaced by the folder it is unpacked into, under `into`; unpacked once per archive
    content, so a resumed run finds the same pages (their ids are their paths)."""
    import zipfile

    from manuscribe.inputs import file_sha256

    unpacked = []
    for path in paths:
        if not (path.is_file() and zipfile.is_zipfile(path)):
            unpacked.append(path)
            continue
        digest = file_sha256(path)[:12]  # streamed: an export with its scans can be gigabytes
        folder = into / f"{path.stem}-{digest}"
        done = folder / ".unpacked"
        if not done.is_file():
            with zipfile.ZipFile(path) as archive:  # member names are made safe by zipfile
                archive.extractall(folder)
            done.touch()
        unpacked.append(folder)
    return unpacked


# root elements of the files exports put beside the pages: METS (eScriptorium, Transkribus) and
# Transkribus's document metadata
COMPANION_ROOTS = {"mets", "trpdocmetadata"}


def find_xml_files(paths: list[Path]) -> list[Path]:
    """XML files under the given files or folders, in a stable order. A folder's METS and
    metadata files are left out; a file named on its own is always read (and reported if it is
    not ALTO or PAGE)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".xml" and p.is_file())
            found += [p for p in files if _root_name(p) not in COMPANION_ROOTS]
        else:
            found.append(path)
    return found


def _root_name(path: Path) -> str:
    """The root element's local name, lower case ("" when the file is not well-formed XML:
    reading it reports that)."""
    try:
        for _, element in etree.iterparse(str(path), events=("start",), huge_tree=True):
            return _local(element.tag).lower()
    except (OSError, etree.XMLSyntaxError):
        pass
    return ""
