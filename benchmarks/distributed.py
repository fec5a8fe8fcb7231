"""Embedded vs distributed throughput on the same cores; prints one JSON line.

    python benchmarks/distributed.py [--pages 100] [--dpi 100]

Pages are the 48 handwritten dataset pages, repeated to reach --pages; each copy gets a unique
trailing comment so its content hash differs and no run reuses another's OCR. Runs, each on a
fresh storage prefix and Redis db, workers started and warm before the clock starts:
  embedded (first and last) manuscribe.pipeline.run, jobs = cores; the machine may be shared,
                           so it runs before and after the others and the mean is compared
  distributed              `manuscribe worker ocr` defaults: one process per core
  ocr x1, ocr x2           one, then two, ocr workers of one single-thread process (scaling)
  threads split (--splits) one process with `cores` onnxruntime threads
  overhead                 OCR replaced by a blank page, one process: submit + S3 + Redis +
                           Celery + assemble per page, minus rasterising (timed alone), in ms
Services are real: redis-server and `weed mini` on loopback (tests/services.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from manuscribe.settings import load_settings  # noqa: E402
from tests.services import Services, Worker, wait_for  # noqa: E402

DATASET = REPO.parent / "shared" / "datasets" / "handwriting"


def make_inputs(folder: Path, pages: int) -> list[Path]:
    sources = sorted(DATASET.glob("*.pdf"))
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for n in range(pages):
        source = sources[n % len(sources)]
        target = folder / f"{n:04d}-{source.name}"
        target.write_bytes(source.read_bytes() + f"\n%bench-copy-{n}\n".encode())
        made.append(target)
    return made


def run_embedded(inputs: list[Path], out: Path) -> float:
    from manuscribe.pipeline import run

    started = time.perf_counter()
    summary = run(inputs, out, load_settings(), show_progress=False)
    assert not summary.failures, summary.failures
    return time.perf_counter() - started


def run_distributed(services: Services, name: str, db: int, inputs, workers, root: Path) -> float:
    """Start `workers` [(queue, args, env)], submit, wait until every document is assembled."""
    from producer.submit import submit
    from workers.jobstate import JobState, redis_client

    env = services.env(name) | {"MANUSCRIBE_BROKER_URL": services.redis.url[:-1] + str(db)}
    os.environ.update(env)
    started_workers = []
    try:
        for index, (queue, args, extra) in enumerate(workers):
            worker = Worker(queue, env | extra, root / f"{name}-{queue}-{index}.log", *args)
            started_workers.append(worker)
        for worker in started_workers:
            worker.wait_ready(120)
        time.sleep(2)  # let the pool children load their engines
        state = JobState(redis_client(env["MANUSCRIBE_BROKER_URL"]))
        started = time.perf_counter()
        result = submit([str(p) for p in inputs], load_settings(), job=name, show_progress=False)
        total_docs = result["documents"]

        def finished():
            counts = state.counts(name)
            return counts["assembled"] >= total_docs and counts["done"] >= result["pages_total"]

        wait_for(finished, 3600, name, interval=0.1)
        seconds = time.perf_counter() - started
        assert state.counts(name)["failed"] == 0
        return seconds
    finally:
        for worker in started_workers:
            worker.stop()


def rasterise_seconds(inputs: list[Path], dpi: int) -> float:
    from manuscribe.inputs import ingest, iter_pages

    started = time.perf_counter()
    for path in inputs:
        for _ in iter_pages(ingest(path), dpi, 10**9):
            pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--dpi", type=int, default=100)
    parser.add_argument("--splits", action="store_true", help="also time 1 process x N threads")
    args = parser.parse_args()
    os.environ.update(
        {
            "MANUSCRIBE_DPI": str(args.dpi),
            "MANUSCRIBE_PREPROCESS": "never",
            "MANUSCRIBE_CORRECTOR": "none",
            "MANUSCRIBE_FORMATS": '["json","txt"]',
        }
    )
    cores = load_settings().cores
    pages = args.pages
    result: dict = {"benchmark": "distributed", "pages": pages, "dpi": args.dpi, "cores": cores}
    with tempfile.TemporaryDirectory(prefix="manuscribe-bench-") as tmp:
        root = Path(tmp)
        inputs = make_inputs(root / "inputs", pages)
        services = Services(root / "services")
        services.redis.start()
        services.weed.start()
        one = {"MANUSCRIBE_THREADS": "1"}
        assemble = ("assemble", [], {})
        try:
            first = run_embedded(inputs, root / "embedded-1")
            default = run_distributed(
                services, "default", 1, inputs, [("ocr", [], {}), assemble], root
            )
            x1 = run_distributed(
                services, "x1", 2, inputs, [("ocr", ["-c", "1"], one), assemble], root
            )
            x2 = run_distributed(
                services,
                "x2",
                5,
                inputs,
                [("ocr", ["-c", "1"], one), ("ocr", ["-c", "1"], one), assemble],
                root,
            )
            if args.splits:
                threads = {"MANUSCRIBE_THREADS": str(cores)}
                split = run_distributed(
                    services, "threads", 3, inputs, [("ocr", ["-c", "1"], threads), assemble], root
                )
                result["split_1_process_x_cores_threads_pages_per_s"] = round(pages / split, 3)
            stub = {"MANUSCRIBE_TEST_STUB_OCR": "1", **one}
            overhead = run_distributed(
                services, "overhead", 4, inputs, [("ocr", ["-c", "1"], stub), assemble], root
            )
            raster = rasterise_seconds(inputs, args.dpi)
            last = run_embedded(inputs, root / "embedded-2")
        finally:
            services.weed.stop()
            services.redis.stop()
    embedded = (first + last) / 2
    result.update(
        {
            "embedded_pages_per_s": round(pages / embedded, 3),
            "embedded_first_last_pages_per_s": [round(pages / first, 3), round(pages / last, 3)],
            "distributed_pages_per_s": round(pages / default, 3),
            "ratio_distributed_to_embedded": round(embedded / default, 3),
            "overhead_ms_per_page": round(1000 * (overhead - raster) / pages, 1),
            "rasterise_ms_per_page": round(1000 * raster / pages, 1),
            "ocr_x1_pages_per_s": round(pages / x1, 3),
            "ocr_x2_pages_per_s": round(pages / x2, 3),
            "scaling_1_to_2": round(x1 / x2, 3),
        }
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
