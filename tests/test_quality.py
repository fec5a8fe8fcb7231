"""Recognition quality of the default engine on real handwriting stays where we measured it.

Figures measured on this machine (rapidocr 3.10: its PP-OCRv6 detector with box threshold 0.3 and
unclip 1.2, and manuscribe's handwriting recogniser manuscribe-htr-latin-v6, decoded with its
character language models, with rapidocr's recogniser as a second opinion by a 0.1 margin; 200
dpi), recorded in docs/performance.md. A change that moves them by more than a few points fails
here: a regression must be fixed, an improvement must update the figures.
"""

from __future__ import annotations

import pytest

from manuscribe.evaluation import evaluate_folder
from manuscribe.pipeline import run
from manuscribe.settings import load_settings

QUALITY_PAGES = [
    "mss19_veuillot_f14",
    "mss19_louise-michel_img22",
    "poilus_AN_0325-1",
    "poilus_AD78_0054-0",
    "stanford_lettre75",
    "stanford_i083",
]
LINE_CER = 0.100  # line-aligned CER over these six pages, measured (rapidocr's own model: 0.285)
FULL_CER = 0.102  # full-page CER over the same pages (rapidocr's own model: 0.273)
TOLERANCE = 0.03


@pytest.mark.slow
def test_default_engine_line_aligned_cer(tmp_path, dataset):
    settings = load_settings(corrector="none", formats=["json"])
    summary = run([dataset / f"{page}.pdf" for page in QUALITY_PAGES], tmp_path, settings)
    assert summary.pages == len(QUALITY_PAGES) and not summary.failures
    report = evaluate_folder(tmp_path, dataset)
    assert len(report["pages"]) == len(QUALITY_PAGES)
    overall = report["summary"]["all"]["before"]
    print("line CER", overall["lines"]["cer"], "full CER", overall["full"]["cer"])
    assert abs(overall["lines"]["cer"] - LINE_CER) <= TOLERANCE, overall
    assert abs(overall["full"]["cer"] - FULL_CER) <= TOLERANCE, overall


def _lines_found(detector: dict, dataset) -> float:
    """Share of the quality pages' ground-truth lines that the engine's detected boxes (built
    with `detector`) cover by half."""
    import json

    import numpy as np
    from PIL import Image

    from manuscribe.engines.rapidocr_engine import RapidOcrEngine
    from manuscribe.evaluation import lines_found

    ocr = RapidOcrEngine(detector=detector)._ocr
    found = total = 0
    for page in QUALITY_PAGES:
        gt = json.loads((dataset / f"{page}.json").read_text())
        with Image.open(dataset / f"{page}.jpg") as image:
            result = ocr(image.convert("RGB"), use_cls=False, use_rec=False)
        boxes = [np.asarray(q) for q in (result.boxes if result.boxes is not None else [])]
        pred = [((*q.min(axis=0), *q.max(axis=0)), "") for q in boxes]
        found += lines_found(gt["lines"], pred, 1.0)
        total += len(gt["lines"])
    return found / total


@pytest.mark.slow
def test_handwriting_detector_settings_find_more_lines_than_stock(dataset):
    """The default `ocr_det_*` settings are what the engine gets, and on handwriting they find
    lines rapidocr's stock thresholds drop or box too loosely."""
    from benchmarks.ocr_throughput import PREVIOUS_DETECTOR
    from manuscribe.engines import detector_settings
    from manuscribe.engines.rapidocr_engine import RapidOcrEngine

    default = detector_settings(load_settings())
    stock = detector_settings(load_settings(**PREVIOUS_DETECTOR))
    assert stock == {"box_thresh": 0.5, "unclip_ratio": 1.6}  # rapidocr's own
    engine = RapidOcrEngine(detector=default)
    post = engine._ocr._load_det_model().postprocess_op
    assert (post.box_thresh, post.unclip_ratio) == (0.3, 1.2)
    assert _lines_found(default, dataset) > _lines_found(stock, dataset) + 0.01
