"""Recognition quality and speed of the default recogniser against the previous ones, same run.
Runs `manuscribe run` (embedded, no correction) over the dev pages three times: with the first
default recogniser (rapidocr's own PP-OCR model, `--ocr-model ppocr`, behind the line detector's
stock thresholds), with the previous shipped default (v5: the same network and main language model
as v6, without v6's English language model and with an even second-opinion comparison; rebuilt from
the shipped file by dropping that entry), and with the new one (`--ocr-model default`, or the model
given). Scores each with `manuscribe eval`'s code and prints one JSON line: line-aligned CER
(strict and case/punctuation-insensitive) and full-page CER per language, and pages/s of each.
`line_cer_loose_missed` is the part of the loose CER that is ground-truth lines nothing was read
into (line finding), the rest being misreadings.
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

# v5 compared the two readings of a line evenly
V5_ENV = {"MANUSCRIBE_OCR_SECOND_OPINION_MARGIN": "0"}


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


def like_v5(model: Path, folder: Path) -> Path:
    """A copy of `model` without its per-language language models: v5's decoding."""
    import onnx

    from manuscribe.engines.char_lm import LANGUAGE_KEY_PREFIX

    graph = onnx.load(str(model))
    kept = [e for e in graph.metadata_props if not e.key.startswith(LANGUAGE_KEY_PREFIX)]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    target = folder / "like-v5.onnx"
    onnx.save(graph, str(target))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=48)
    parser.add_argument("--ocr-model", default="default")
    parser.add_argument("--jobs", type=int, default=0)
    args = parser.parse_args()
    pdfs = pick_pages(args.pages)
    from manuscribe.engines import rec_models

    previous = measure(pdfs, "ppocr", args.jobs, env=PREVIOUS_ENV)
    with tempfile.TemporaryDirectory() as folder:
        v5 = like_v5(rec_models.resolve(args.ocr_model).path, Path(folder))
        shipped = measure(pdfs, str(v5), args.jobs, env=V5_ENV)
    new = measure(pdfs, args.ocr_model, args.jobs)
    print(
        json.dumps(
            {
                "benchmark": "ocr_quality",
                "pages": len(pdfs),
                "cores": len(os.sched_getaffinity(0)),
                "new_model": args.ocr_model,
                "new": new,
                "previous_shipped_v5": shipped,
                "first_default_ppocr": previous,
                "speed_new_vs_first": round(new["pages_per_s"] / previous["pages_per_s"], 3),
                "speed_new_vs_v5": round(new["pages_per_s"] / shipped["pages_per_s"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
