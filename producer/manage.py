"""`manuscribe results | retry | cancel JOB`.

Retry is bounded twice: a task retries a transient error a few times by itself, and `retry`
re-enqueues a page at most `retry_rounds` times. Input errors (corrupt, encrypted, not a PDF or
image, a page that cannot be rendered) are never re-enqueued: the same bytes fail the same way,
so the record says to fix the file and submit it again.
"""

from __future__ import annotations

import json
from pathlib import Path

from manuscribe.settings import Settings
from manuscribe.storage import open_storage
from manuscribe.storage.keys import failure_key, safe_name
from producer.status import failure_records, load_manifest
from workers.app import TASK_ASSEMBLE, TASK_OCR, option
from workers.jobstate import JobState, page_id, redis_client


def download_results(job: str, out: Path, settings: Settings) -> list[Path]:
    """Copy `results/<job>/*` into `out`; keys are sanitised names, so nothing lands outside."""
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    load_manifest(storage, job)
    out.mkdir(parents=True, exist_ok=True)
    root = out.resolve()
    written = []
    prefix = f"results/{safe_name(job)}/"
    for key in storage.list(prefix):
        target = (root / key[len(prefix) :]).resolve()
        if root not in target.parents:
            continue  # cannot happen with keys from result_key(); refuse rather than trust
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        tmp.write_bytes(storage.get(key))
        tmp.replace(target)
        written.append(target)
    return written


def retry_job(job: str, settings: Settings) -> dict:
    """Re-enqueue the pages (and documents) that failed; report what was skipped and why."""
    from workers.app import make_app

    app = make_app(settings)

    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    manifest = load_manifest(storage, job)
    state = JobState(redis_client(settings.broker_url))
    if state.cancelled(job):
        state.r.hset(state.key(job, "meta"), "cancelled", 0)
    options = manifest.get("options", {})
    rounds_limit = int(option(settings, "retry_rounds"))
    requeued, skipped = [], []
    for record in failure_records(storage, job):
        label = {"name": record.get("name"), "page": record.get("page")}
        if record.get("stage") == "ingest" or not record.get("retryable", True):
            skipped.append(label | {"reason": f"input error, not retried: {record.get('error')}"})
            continue
        doc = manifest["documents"][record["document"]]
        member = page_id(doc["index"], record["page"] or 0)
        rounds = state.r.hincrby(state.key(job, "rounds"), member, 1)
        if rounds > rounds_limit:
            skipped.append(label | {"reason": f"gave up after {rounds_limit} retries"})
            continue
        storage.delete(failure_key(job, record["name"], record.get("page")))
        if record.get("page") is None:  # assembly failed: every page is stored, render again
            app.send_task(TASK_ASSEMBLE, args=[job, doc, options], queue="assemble")
        else:
            state.reopen_page(job, doc["index"], record["page"])
            app.send_task(
                TASK_OCR,
                args=[job, doc, record["page"], options, int(record.get("tries", 1))],
                queue="ocr",
            )
        requeued.append(label)
    return {"job": job, "requeued": requeued, "skipped": skipped}


def cancel_job(job: str, settings: Settings) -> dict:
    """Flag the job: queued tasks become no-ops when a worker takes them; running ones finish."""
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    load_manifest(storage, job)
    state = JobState(redis_client(settings.broker_url))
    state.cancel(job)
    counts = state.counts(job)
    pending = int(state.meta(job).get("pages_total", 0)) - counts["done"] - counts["failed"]
    return {"job": job, "cancelled": True, "pages_skipped": max(0, pending)}


def dumps(data: dict) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False)
