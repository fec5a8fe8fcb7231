"""kraken: baseline segmentation for handwriting, and the field's kraken recognition models.

Segmentation runs kraken's baseline segmenter (the `blla` model its package ships, or the
`seg_model` setting): each line comes with its baseline and boundary polygon, lines are grouped
into kraken's text regions, and the segmenter's reading order is kept. Recognition reads each
line with a kraken model when `ocr_model` names one (`.mlmodel`, `.safetensors`, `doi:...`);
otherwise manuscribe's own recogniser (or any PP-OCR ONNX recogniser, see rec_models.py) reads
kraken's dewarped line images, so a user gets baseline segmentation with the default reading.

torch and kraken are imported here only, when the engine is created: the rapidocr and
tesseract engines never load them. Models load once per engine, and workers keep one engine
per process (workers/context.py).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from PIL import Image

from manuscribe.engines import rec_models
from manuscribe.engines.base import EngineError, Hints, PageResult
from manuscribe.model import Line
from manuscribe.settings import cache_root

log = logging.getLogger(__name__)

KRAKEN_SUFFIXES = (".mlmodel", ".safetensors")
DOI_PREFIX = "doi:"
BUNDLED_SEGMENTER = "blla (bundled with kraken)"
SEGMENTER_HEIGHT = 1800  # blla resizes every page to this height before its network sees it
# Median line height (in that view) from which the smaller views' whole lines replace the pieces.
# On 18 held-out training pages (scripts/build_handwriting_model.py's validation split), merging
# everywhere found the most lines but read registers worse (their cells are separate lines);
# merging only above this height, or where most lines were cut (`fragmented`), read best.
LARGE_SCRIPT = 80


@dataclass(frozen=True)
class ModelFile:
    """A model file and its identity (sha256), which goes into the OCR fingerprint."""

    spec: str
    path: Path | None  # None: the model kraken ships
    sha256: str


def is_kraken_model(spec: str | None) -> bool:
    """Whether an `ocr_model` value names a kraken recogniser rather than a PP-OCR one."""
    spec = (spec or "").strip()
    return spec.startswith(DOI_PREFIX) or spec.lower().endswith(KRAKEN_SUFFIXES)


def resolve_model(spec: str, storage=None, cache_dir: Path | None = None) -> ModelFile:
    """A model setting -> a local file: a path, `storage:<key>` (fetched once into the cache),
    or `doi:<DOI>` (downloaded once from kraken's model repository through htrmopo)."""
    spec = spec.strip()
    if spec.startswith(DOI_PREFIX):
        path = download_doi(spec[len(DOI_PREFIX) :], cache_dir)
    elif spec.startswith(rec_models.STORAGE_PREFIX):
        path = rec_models.fetch_from_storage(spec, storage, cache_dir)
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise EngineError(f"kraken model {spec!r}: no such file {path}")
    return ModelFile(spec=spec, path=path, sha256=rec_models.file_identity(path))


def download_doi(doi: str, cache_dir: Path | None = None) -> Path:
    """The model file of a kraken repository record (Zenodo), downloaded once into the cache."""
    cache = (cache_dir or cache_root() / "models") / "doi"
    target = cache / str(uuid.uuid5(uuid.NAMESPACE_URL, doi))
    found = _model_in(target)
    if found is not None:
        return found
    try:
        from htrmopo import get_model
    except ImportError as exc:
        raise EngineError(f"doi:{doi}: kraken is not installed (make install-test)") from exc
    try:
        get_model(doi, target)
    except Exception as exc:  # network, an unknown DOI, Zenodo errors
        raise EngineError(
            f"doi:{doi}: could not download the model from kraken's model repository "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    found = _model_in(target)
    if found is None:
        kinds = ", ".join(KRAKEN_SUFFIXES)
        raise EngineError(f"doi:{doi}: the record holds no kraken model ({kinds})")
    return found


def _model_in(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in KRAKEN_SUFFIXES)
    return files[0] if files else None


def _load(what: str, loader, path: Path | None):
    try:
        return loader(path)
    except Exception as exc:  # kraken raises ValueError, KrakenInvalidModelException, ...
        raise EngineError(f"kraken could not load the {what} model {path} ({exc})") from exc


class KrakenEngine:
    name = "kraken"

    def __init__(
        self,
        seg_model: ModelFile | None = None,
        rec_model: ModelFile | None = None,
        reader=None,
        threads: int = 1,
        device: str = "cpu",
        page_heights: tuple[float, ...] = (1.0,),
    ):
        """`rec_model`: a kraken recogniser; else `reader` (a RapidOcrEngine) reads the lines."""
        try:
            import torch
            from kraken.tasks import RecognitionTaskModel, SegmentationTaskModel
        except ImportError as exc:
            raise EngineError(
                f"the kraken engine needs kraken ({exc}); pip install -e '.[kraken]'"
            ) from exc
        if rec_model is None and reader is None:
            raise EngineError("the kraken engine needs a kraken model or a line reader")
        # on a shared machine one torch thread per process is several times faster than two
        torch.set_num_threads(max(1, threads))
        self.version = version("kraken")
        self.threads, self.device = threads, device
        self.page_heights = tuple(page_heights) or (1.0,)
        self.seg_model, self.rec_model, self.reader = seg_model, rec_model, reader
        seg_path = seg_model.path if seg_model else None
        self._segmenter = _load("segmentation", SegmentationTaskModel.load_model, seg_path)
        self._recognizer = None
        if rec_model is not None:
            self._recognizer = _load("recognition", RecognitionTaskModel.load_model, rec_model.path)
        logging.getLogger("kraken").setLevel(logging.WARNING)

    def settings(self) -> dict:
        seg = self.seg_model
        if self.rec_model is not None:
            rec = {"kraken": self.rec_model.spec, "sha256": self.rec_model.sha256}
        else:
            reader = self.reader.settings()
            rec = {"reader": reader["rec"], "second_opinion": reader["second_opinion"],
                   "decoder": reader["decoder"]}  # fmt: skip
        return {
            "seg": {"name": seg.spec, "sha256": seg.sha256} if seg else BUNDLED_SEGMENTER,
            "seg_page_heights": list(self.page_heights),
            "rec": rec,
        }

    def recognize(self, image: Image.Image, hints: Hints) -> PageResult:
        from kraken.configs import SegmentationInferenceConfig

        image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
        config = SegmentationInferenceConfig(**_placement(self.device))
        first, *others = sorted(self.page_heights, reverse=True)  # kraken's own view first
        segmentation = self._segment(image, first, config)
        large = script_height(segmentation.lines, image.height / first) >= LARGE_SCRIPT
        for page_height in others:
            found = self._segment(image, page_height, config)
            if not segmentation.lines or fragmented(segmentation.lines, found.lines):
                segmentation = found  # most lines were cut: the farther view's lines, all
            elif large:  # the farther view's whole line wherever the closer one cut it
                lines = merge_views(segmentation.lines, found.lines)
                segmentation = dataclasses.replace(segmentation, lines=lines)
        kept = segmentation.lines
        readings = self._read(image, segmentation)
        # every line the segmenter found is kept, however unsure its reading (its confidence
        # says so): keeping the page's lines intact is what this engine is for
        lines, line_regions = [], []
        for kline, (text, confidence) in zip(kept, readings, strict=True):
            if not text:
                continue
            lines.append(_line(kline, text, confidence))
            line_regions.append((kline.regions or [None])[0])
        return PageResult(lines=lines, blocks=_blocks(line_regions))

    def _segment(self, image: Image.Image, page_height: float, config):
        """blla's lines of the page on a canvas `1 / page_height` as tall, clipped to the page."""
        found = self._segmenter.predict(_padded(image, page_height), config)
        kept = [_inside(ln, image.size) for ln in found.lines or []]
        return dataclasses.replace(found, lines=[ln for ln in kept if ln])

    def _read(self, image: Image.Image, segmentation) -> list[tuple[str, float]]:
        if self._recognizer is not None:
            from kraken.configs import RecognitionInferenceConfig

            # lines are cut out in this process: a worker process already is one of many
            config = RecognitionInferenceConfig(num_line_workers=0, **_placement(self.device))
            records = self._recognizer.predict(image, segmentation, config)
            by_id = {r.id: r for r in records}
            out = []
            for kline in segmentation.lines:
                record = by_id.get(kline.id)
                if record is None or not record.prediction:
                    out.append(("", 0.0))
                    continue
                text = " ".join(record.prediction.split())
                confidence = sum(record.confidences) / max(1, len(record.confidences))
                out.append((text, round(float(confidence), 4)))
            return out
        crops = [_line_image(image, segmentation, kline) for kline in segmentation.lines]
        readable = [i for i, crop in enumerate(crops) if crop is not None]
        read = self.reader.read_crops([crops[i] for i in readable])
        out = [("", 0.0)] * len(crops)
        for index, reading in zip(readable, read, strict=True):
            out[index] = reading
        return out

    def close(self) -> None:
        self._segmenter = self._recognizer = None
        if self.reader is not None:
            self.reader.close()


def _placement(device: str) -> dict:
    """kraken's (Lightning Fabric's) spelling of a torch device: cpu, cuda or cuda:N."""
    if device.startswith("cuda"):
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return {"accelerator": "gpu", "device": [index]}
    return {"accelerator": "cpu", "device": 1}


def script_height(lines: list, canvas_height: float) -> float:
    """The median height of the lines' polygons as blla's network saw them (it resizes its
    input, of `canvas_height`, to 1,800 px high): large script is what blla cuts into pieces."""
    from statistics import median

    if not lines or canvas_height <= 0:
        return 0.0
    heights = [max(y for _, y in ln.boundary) - min(y for _, y in ln.boundary) for ln in lines]
    return median(heights) * SEGMENTER_HEIGHT / canvas_height


def line_pieces(fine: list, coarse: list) -> list[list[int]]:
    """For each line of the `coarse` segmentation, the indices of the `fine` lines that run along
    it: one when both views found the same line, several when the fine view cut it into pieces,
    as large script makes blla do. A fine line counts when the middle of its baseline lies inside
    the coarse line's polygon and near its baseline (within half the line's height), so lines the
    coarse view merged one above the other are not pieces of it. Each fine line counts once."""
    from shapely.geometry import LineString, Point, Polygon

    middles = [LineString(ln.baseline).interpolate(0.5, normalized=True) for ln in fine]
    taken: set[int] = set()
    pieces = []
    for line in coarse:
        outline = Polygon(line.boundary).buffer(0)
        baseline = LineString(line.baseline)
        found: list[int] = []
        if not outline.is_empty and baseline.length >= 1:
            reach = 0.5 * outline.area / baseline.length  # half the line's height
            found = [
                i
                for i, middle in enumerate(middles)
                if i not in taken
                and outline.contains(Point(middle))
                and baseline.distance(middle) < reach
            ]
        taken.update(found)
        pieces.append(found)
    return pieces


def fragmented(fine: list, coarse: list) -> bool:
    """Whether the `fine` view cut most lines into pieces: the median coarse line is in two or
    more. blla does this to very large script (a few lines to the page), whose pieces are each
    small, so the script's height in the fine view does not show it."""
    from statistics import median

    counts = [len(found) for found in line_pieces(fine, coarse) if found]
    return bool(counts) and median(counts) >= 2


def merge_views(fine: list, coarse: list) -> list:
    """The `fine` view's lines, except that a line it cut into pieces is replaced by the `coarse`
    view's whole line, in the reading position (and region) of its first piece. The choice is
    made line by line, so a page with both small and large script keeps the best of each."""
    replaced: dict[int, object] = {}  # first piece -> the coarse line replacing the pieces
    dropped: set[int] = set()
    for line, found in zip(coarse, line_pieces(fine, coarse), strict=True):
        if len(found) >= 2 and _side_by_side([fine[i] for i in found]):
            first = min(found)
            replaced[first] = dataclasses.replace(line, regions=fine[first].regions)
            dropped.update(found)
    merged = []
    for index, line in enumerate(fine):
        if index in replaced:
            merged.append(replaced[index])
        elif index not in dropped:
            merged.append(line)
    return merged


def _side_by_side(lines: list) -> bool:
    """Whether lines lie one after another along the page, as the pieces of one cut line do,
    rather than one above another (their baselines' horizontal spans overlap by under a fifth)."""
    from shapely.geometry import LineString
    from shapely.ops import unary_union

    xs = [[x for x, _ in ln.baseline] for ln in lines]
    spans = [LineString([(min(x), 0), (max(x), 0)]) for x in xs]
    return sum(span.length for span in spans) <= 1.2 * unary_union(spans).length


def _padded(image: Image.Image, page_height: float) -> Image.Image:
    """The page on a canvas `1 / page_height` times as tall, padded below with the paper's
    colour. blla resizes every input to 1800 px high, so a page of few, large lines reaches the
    network with lines far taller than those it learnt from, and they come out in fragments;
    padding shrinks the script in the network's view without moving any page coordinate (and
    the network sees fewer real pixels, so it also runs faster)."""
    if page_height >= 1.0:
        return image
    import numpy as np

    pixels = np.asarray(image.convert("RGB").resize((64, 64)))
    paper = tuple(int(v) for v in np.median(pixels.reshape(-1, 3), axis=0))
    canvas = Image.new("RGB", (image.width, round(image.height / page_height)), paper)
    canvas.paste(image.convert("RGB"), (0, 0))
    return canvas if image.mode == "RGB" else canvas.convert(image.mode)


def _inside(kline, size: tuple[int, int]):
    """A line clipped to the page (the padding holds none), or None if kraken could not cut
    it out: it needs a baseline of two points or more and a boundary polygon."""
    if not kline.baseline or len(kline.baseline) < 2 or len(kline.boundary or []) < 3:
        return None
    if min(y for _, y in kline.baseline) >= size[1]:
        return None  # found in the padding
    baseline, boundary = _clip(kline.baseline, size), _clip(kline.boundary, size)
    if len(set(baseline)) < 2 or len(set(boundary)) < 3:
        return None
    return dataclasses.replace(kline, baseline=baseline, boundary=boundary)


def _line_image(image: Image.Image, segmentation, kline) -> Image.Image | None:
    """kraken's dewarped image of one line (None when kraken cannot cut it out)."""
    from kraken.lib.segmentation import extract_polygons

    try:
        crop, _ = next(extract_polygons(image, dataclasses.replace(segmentation, lines=[kline])))
    except (ValueError, StopIteration) as exc:
        log.debug("line %s not extracted: %s", kline.id, exc)
        return None
    return crop if crop.width > 1 and crop.height > 1 else None


def _clip(points, size: tuple[int, int]) -> list[tuple[int, int]]:
    width, height = size
    return [(min(max(0, int(x)), width), min(max(0, int(y)), height)) for x, y in points]


def _line(kline, text: str, confidence: float) -> Line:
    """A document line from a kraken line already clipped to the page (`_inside`)."""
    polygon, baseline = list(kline.boundary), list(kline.baseline)
    xs = [x for x, _ in polygon + baseline]
    ys = [y for _, y in polygon + baseline]
    bbox = (min(xs), min(ys), max(xs), max(ys))
    return Line(bbox=bbox, text=text, confidence=confidence, baseline=baseline, polygon=polygon)


def _blocks(line_regions: list[str | None]) -> list[list[int]]:
    """Lines (already in the segmenter's reading order) grouped by their kraken region, regions
    in the order their first line is read. Lines outside every region: the pipeline groups the
    page itself (empty result), as for engines that find no blocks."""
    if not line_regions or any(region is None for region in line_regions):
        return []
    groups: dict[str, list[int]] = {}
    for index, region in enumerate(line_regions):
        groups.setdefault(region, []).append(index)
    return list(groups.values())
