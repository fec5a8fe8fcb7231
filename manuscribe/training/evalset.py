"""Turn ground-truth pages (ALTO / PAGE) into an evaluation set `manuscribe eval` scores: each image
downscaled to a long side of at most 1800 px (as the dev set is), beside a JSON in the dev set's
format (lines with text and box), then run the pipeline over it and score per collection."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from PIL import Image

from manuscribe.training.groundtruth import GtPage

MAX_SIDE = 1800


def export_eval_page(page: GtPage, folder: Path, name: str, **fields) -> Path:
    """Write `<name>.jpg` and `<name>.json` into `folder`; returns the image path."""
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(page.image_path) as image:
        scale = min(1.0, MAX_SIDE / max(image.size))
        size = (round(image.width * scale), round(image.height * scale))
        small = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    small.save(folder / f"{name}.jpg", quality=85, dpi=(200, 200))
    lines = [{"text": ln.text, "bbox": [round(v * scale) for v in ln.bbox]} for ln in page.lines]
    record = {"id": name, "width": small.width, "height": small.height, "lines": lines,
              "language": fields.pop("language", "") or "und", **fields}  # fmt: skip
    (folder / f"{name}.json").write_text(json.dumps(record, ensure_ascii=False))
    return folder / f"{name}.jpg"


def score_folder(folder: Path, ocr_model: str, jobs: int = 0, language_model: bool = True) -> dict:
    """Read every image of an evaluation folder with `ocr_model` (embedded, no correction; with
    `language_model` False, decoded greedily) and score it: line-aligned CER overall,
    case/punctuation-insensitive, and per `collection`."""
    from manuscribe.evaluation import evaluate_folder
    from manuscribe.pipeline import run
    from manuscribe.settings import load_settings

    images = sorted(folder.glob("*.jpg"))
    with tempfile.TemporaryDirectory() as out:
        settings = load_settings(corrector="none", formats=["json"], ocr_model=ocr_model,
                                 jobs=jobs or None, ocr_language_model=language_model)  # fmt: skip
        run(images, Path(out), settings)
        report = evaluate_folder(Path(out), folder)
    by_collection: dict[str, list[int]] = {}
    for row in report["pages"]:
        gt = json.loads((folder / f"{row['id']}.json").read_text())
        counts = row["before"]["lines"]
        bucket = by_collection.setdefault(gt.get("collection", ""), [0, 0])
        bucket[0] += counts["char_errors"]
        bucket[1] += counts["chars"]
    summary = report["summary"]["all"]["before"]
    rates = {c: round(e / max(1, n), 4) for c, (e, n) in sorted(by_collection.items())}
    return {
        "pages": len(report["pages"]),
        "line_cer": summary["lines"]["cer"],
        "line_cer_loose": summary["lines_loose"]["cer"],
        "lines_found": summary["detection"]["recall"],
        # the part of line_cer_loose that is ground-truth lines nothing was read into
        "line_cer_loose_missed": summary["lines_loose"]["missed"],
        "page_cer": summary["full"]["cer"],
        "by_collection": rates,
    }
