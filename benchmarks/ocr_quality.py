"""Recognition quality and speed of the default recogniser against the previous one, same run.

Runs `manuscribe run` (embedded, no correction) over the dev pages twice, once with the previous
default recogniser (rapidocr's own PP-OCR model, `--ocr-model ppocr`) and once with the new one
(`--ocr-model default`, or the model given), scores both with `manuscribe eval`'s code, and prints
one JSON line: line-aligned CER (strict and case/punctuation-insensitive) and full-page CER per
language, and pages/s of each. The new model is also run with `--no-ocr-lm` (greedy decoding,
its character language model unused), and behind the line detector's stock thresholds (those of
the previous default), so what the language model and the detector settings add are measured beside
it. `line_cer_loose_missed` is the part of the loose CER that is ground-truth lines nothing was
read into (line finding), the rest being misreadings.

Usage: python benchmarks/ocr_quality.py [--pages 48] [--ocr-model default] [--jobs 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.ocr_throughput import DATASET, PREVIOUS_ENV, pick_pages  # noqa: E402


def run_and_score(pdfs: list[Path], flags: list[str], env: dict | None = None):
    """`manuscribe run` (embedded, no correction) over `pdfs` with `flags`, timed, and scored
    with `manuscribe eval`'s code: (seconds, report)."""
    from manuscribe.evaluation import evaluate_folder

    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "manuscribe", "run", *map(str, pdfs), "--out", out,
                   "--corrector", "none", "--formats", "json", *flags]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, **(env or {})})
        elapsed = time.perf_counter() - started
        return elapsed, evaluate_folder(Path(out), DATASET)


def measure(
    pdfs: list[Path], ocr_model: str, jobs: int, lm: bool = True, env: dict | None = None
) -> dict:
    flags = ["--ocr-model", ocr_model] + (["--jobs", str(jobs)] if jobs else [])
    flags += [] if lm else ["--no-ocr-lm"]
    elapsed, report = run_and_score(pdfs, flags, env)
    result = {"pages_per_s": round(len(pdfs) / elapsed, 3)}
    for group, stages in report["summary"].items():
        views = stages["before"]
        result[group] = {
            "line_cer": views["lines"]["cer"],
            "line_cer_loose": views["lines_loose"]["cer"],
            # the part of line_cer_loose that is ground-truth lines nothing was read into
            "line_cer_loose_missed": views["lines_loose"]["missed"],
            "page_cer": views["full"]["cer"],
            "line_wer": views["lines"]["wer"],
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=48)
    parser.add_argument("--ocr-model", default="default")
    parser.add_argument("--jobs", type=int, default=0)
    args = parser.parse_args()
    pdfs = pick_pages(args.pages)
    previous = measure(pdfs, "ppocr", args.jobs, env=PREVIOUS_ENV)
    stock_detector = measure(pdfs, args.ocr_model, args.jobs, env=PREVIOUS_ENV)
    greedy = measure(pdfs, args.ocr_model, args.jobs, lm=False)
    new = measure(pdfs, args.ocr_model, args.jobs)
    print(
        json.dumps(
            {
                "benchmark": "ocr_quality",
                "pages": len(pdfs),
                "cores": len(os.sched_getaffinity(0)),
                "new_model": args.ocr_model,
                "new": new,
                "new_without_lm": greedy,
                "new_with_stock_detector": stock_detector,
                "previous": previous,
                "speed_new_vs_previous": round(new["pages_per_s"] / previous["pages_per_s"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
