"""Recognition quality of the default engine on real handwriting stays where we measured it.

Figures measured on this machine (rapidocr 3.10: its PP-OCRv6 detector and manuscribe's
handwriting recogniser manuscribe-htr-latin-v5, decoded with its character language model, with
rapidocr's recogniser as a second opinion; 200 dpi), recorded in docs/performance.md. A change
that moves them by more than a few points fails here: a regression must be fixed, an improvement
must update the figures.
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
LINE_CER = 0.102  # line-aligned CER over these six pages, measured (rapidocr's own model: 0.285)
FULL_CER = 0.098  # full-page CER over the same pages (rapidocr's own model: 0.273)
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
