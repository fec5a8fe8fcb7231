"""kraken's baseline segmentation against the default engine: speed, lines found, CER, same run.

Runs `manuscribe run` (embedded, no correction) over the same dev pages with the default engine
(rapidocr detection + the handwriting recogniser) and with `--engine kraken` (kraken's bundled
blla segmenter; lines read by the same default recogniser, or by `--kraken-model`), scores both
with `manuscribe eval`'s code and prints one JSON line: pages/s, line recall against the
ground-truth boxes (a line counts as found when predicted lines cover half its box), line-aligned
CER, per language.

Usage: python benchmarks/kraken_engine.py [--pages 8] [--kraken-model PATH] [--jobs 1]
                                          [--seg-page-heights 1.0,0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.ocr_quality import run_and_score  # noqa: E402
from benchmarks.ocr_throughput import pick_pages  # noqa: E402


def measure(pdfs: list[Path], flags: list[str], env: dict | None = None) -> dict:
    elapsed, report = run_and_score(pdfs, flags, env)
    result = {"pages_per_s": round(len(pdfs) / elapsed, 4), "seconds": round(elapsed, 1)}
    for group, stages in report["summary"].items():
        views = stages["before"]
        result[group] = {
            "line_recall": views["detection"]["recall"],
            "line_cer": views["lines"]["cer"],
            "line_cer_loose": views["lines_loose"]["cer"],
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--kraken-model", default="", help="a kraken recogniser to read with")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seg-page-heights", default="", help="e.g. 1.0 or 1.0,0.5")
    args = parser.parse_args()
    pdfs = pick_pages(args.pages)
    jobs = ["--jobs", str(args.jobs)]
    default = measure(pdfs, jobs)
    kraken_flags = ["--engine", "kraken", *jobs]
    if args.kraken_model:
        kraken_flags += ["--ocr-model", args.kraken_model]
    env = {}
    if args.seg_page_heights:
        env["MANUSCRIBE_SEG_PAGE_HEIGHTS"] = json.dumps(
            [float(v) for v in args.seg_page_heights.split(",")]
        )
    kraken = measure(pdfs, kraken_flags, env)
    print(
        json.dumps(
            {
                "benchmark": "kraken_engine",
                "pages": len(pdfs),
                "cores": len(os.sched_getaffinity(0)),
                "kraken_reader": args.kraken_model or "default recogniser",
                "seg_page_heights": args.seg_page_heights or "default",
                "kraken": kraken,
                "default_engine": default,
                "speed_kraken_vs_default": round(kraken["pages_per_s"] / default["pages_per_s"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
