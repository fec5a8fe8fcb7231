"""Throughput of `manuscribe run` against the raw OCR engine on the same pages and cores.

Prints one JSON line:
  run_pages_per_s      `manuscribe run` as a user runs it (a subprocess: start-up, rasterising,
                       OCR, layout, language ID, caching, rendering, writing)
  raw_pages_per_s      the engine alone, called directly on pre-rendered images (the ceiling)
  ratio                run / raw (target >= 0.95)
  ocrmypdf_pages_per_s ocrmypdf (tesseract) on the same PDFs, for reference, when it is installed
  previous_*           the same two figures with the previous default recogniser (rapidocr's own
                       PP-OCR model, `--ocr-model ppocr`, behind the line detector's stock
                       thresholds), and new_vs_previous = run / previous run

Usage: python benchmarks/ocr_throughput.py [--pages 24] [--engine rapidocr] [--dpi 200]
                                          [--ocr-model default]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASET = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "handwriting"
# the previous default engine: rapidocr's own recogniser behind its detector's stock thresholds
PREVIOUS_DETECTOR = {"ocr_det_box_thresh": 0.5, "ocr_det_unclip_ratio": 1.6}
PREVIOUS_ENV = {f"MANUSCRIBE_{key.upper()}": str(value) for key, value in PREVIOUS_DETECTOR.items()}


def pick_pages(count: int) -> list[Path]:
    """Every k-th PDF, so all three collections are represented."""
    pdfs = sorted(DATASET.glob("*.pdf"))
    step = max(1, len(pdfs) // count)
    return pdfs[::step][:count]


def raw_engine(
    pdfs: list[Path], engine_name: str, dpi: int, ocr_model: str = "default", **settings
) -> float:
    """Pages/s of the engine alone: images rendered beforehand, one engine, threads = cores."""
    from manuscribe.engines import Hints, create_engine
    from manuscribe.inputs import ingest, iter_pages
    from manuscribe.settings import load_settings

    cores = len(os.sched_getaffinity(0))
    config = load_settings(
        engine=engine_name, jobs=1, threads=cores, ocr_model=ocr_model, **settings
    )
    images = [image for pdf in pdfs for _, image, _ in iter_pages(ingest(pdf), dpi, 10**9)]
    engine = create_engine(engine_name, config)
    engine.recognize(images[0], Hints(dpi=dpi))  # warm-up, as the pipeline's start-up is counted
    started = time.perf_counter()
    for image in images:
        engine.recognize(image, Hints(dpi=dpi))
    return len(images) / (time.perf_counter() - started)


def manuscribe_run(
    pdfs: list[Path],
    engine_name: str,
    dpi: int,
    ocr_model: str = "default",
    env: dict | None = None,
) -> float:
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable, "-m", "manuscribe", "run", *map(str, pdfs), "--out", out,
            "--engine", engine_name, "--ocr-model", ocr_model, "--dpi", str(dpi),
            "--corrector", "none",
            "--preprocess", "never", "--formats", "json,txt",
        ]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, **(env or {})})
        return len(pdfs) / (time.perf_counter() - started)


def ocrmypdf(pdfs: list[Path]) -> float | None:
    if shutil.which("ocrmypdf") is None:
        return None
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        for pdf in pdfs:
            subprocess.run(
                ["ocrmypdf", "--force-ocr", "--jobs", str(cores), "-l", "fra+eng",
                 "--output-type", "pdf", "--optimize", "0", str(pdf), f"{out}/{pdf.name}"],
                check=True, capture_output=True,
            )  # fmt: skip
        return len(pdfs) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=24)
    parser.add_argument("--engine", default="rapidocr")
    parser.add_argument("--dpi", type=int, default=200)
    parser.add_argument("--ocr-model", default="default")
    args = parser.parse_args()
    pdfs = pick_pages(args.pages)
    run = manuscribe_run(pdfs, args.engine, args.dpi, args.ocr_model)
    raw = raw_engine(pdfs, args.engine, args.dpi, args.ocr_model)
    previous = previous_raw = None
    if args.engine == "rapidocr":
        previous = manuscribe_run(pdfs, args.engine, args.dpi, "ppocr", PREVIOUS_ENV)
        previous_raw = raw_engine(pdfs, args.engine, args.dpi, "ppocr", **PREVIOUS_DETECTOR)
    reference = ocrmypdf(pdfs)
    result = {
        "benchmark": "ocr_throughput",
        "engine": args.engine,
        "ocr_model": args.ocr_model,
        "pages": len(pdfs),
        "dpi": args.dpi,
        "cores": len(os.sched_getaffinity(0)),
        "run_pages_per_s": round(run, 3),
        "raw_pages_per_s": round(raw, 3),
        "ratio": round(run / raw, 3),
        "previous_run_pages_per_s": round(previous, 3) if previous else None,
        "previous_raw_pages_per_s": round(previous_raw, 3) if previous_raw else None,
        "new_vs_previous": round(run / previous, 3) if previous else None,
        "ocrmypdf_pages_per_s": round(reference, 3) if reference else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
