"""Default Celery options per queue, chosen from the engine and the machine.

- ocr / rapidocr: one single-threaded process per core, as many as memory allows (~1 GB each).
  Measured on 2 cores (benchmarks/distributed.py, 100 pages): 2 processes x 1 thread did 0.93
  pages/s, 1 process x 2 onnxruntime threads 0.35: intra-op threads barely help on page-sized
  inputs, separate processes do.
- ocr / tesseract: single-threaded per page, so one process per core.
- ocr / aspose-cloud: waits on HTTP, so a thread pool wider than the cores.
- correct: one model per GPU, one task at a time; a thread pool of one (not `solo`) so the
  consumer keeps prefetching while the model runs, and a task can batch the prefetched pages.
- assemble: light; one process.
All use prefetch 1 except `correct`, whose prefetch is its batch size. Anything the operator
passes after the queue name (e.g. `--concurrency 8`) wins over these.
"""

from __future__ import annotations

import os

from manuscribe.settings import Settings
from workers.app import option


def ocr_split(engine: str, cores: int) -> tuple[str, int, int]:
    """(pool, processes or threads, engine threads per process) for the OCR queue."""
    if engine == "tesseract":
        return "prefork", cores, 1
    if engine == "aspose-cloud":
        return "threads", max(8, cores * 4), 1
    processes = max(1, min(cores, _memory_slots(PROCESS_GB)))
    return "prefork", processes, 1


PROCESS_GB = 1.2  # resident size of one rapidocr worker process with its models


def _memory_slots(gigabytes: float) -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available / (gigabytes * 2**30))
    except Exception:  # no psutil or no /proc: do not limit
        return 1 << 16


def worker_argv(queue: str, settings: Settings, extra: list[str]) -> tuple[list[str], dict]:
    """Celery `worker` argv and environment for `manuscribe worker QUEUE [extra...]`."""
    env: dict[str, str] = {"MANUSCRIBE_WORKER_QUEUE": queue}
    if queue == "ocr":
        pool, concurrency, threads = ocr_split(settings.engine, settings.cores)
        if settings.threads:
            threads = settings.threads
        env["MANUSCRIBE_THREADS"] = str(threads)
        args = ["--pool", pool, "--concurrency", str(concurrency), "--prefetch-multiplier", "1"]
    elif queue == "correct":
        batch = int(option(settings, "correct_batch_pages"))
        args = ["--pool", "threads", "--concurrency", "1", "--prefetch-multiplier", str(batch)]
    else:
        args = ["--pool", "prefork", "--concurrency", "1", "--prefetch-multiplier", "4"]
    argv = [
        "worker",
        "--queues",
        queue,
        "--hostname",
        f"{queue}-{os.getpid()}@%h",  # unique per process: several workers may share a host
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        *args,
        *extra,
    ]
    return argv, env
