"""`manuscribe submit`: validate and upload sources, write the manifest, enqueue one task per page.

Inputs stream: files are found lazily, read one at a time (a few in flight for upload), and only
small metadata per document stays in memory, so 10,000 PDFs submit in constant memory. Sources
are content-addressed (`sources/<sha256>.<ext>`): a file already in storage is not sent again.
The manifest is written before any task is enqueued, so a worker never sees a job without one.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from manuscribe.inputs import SUFFIXES, InputError, discover, ingest
from manuscribe.model import Failure
from manuscribe.settings import Settings
from manuscribe.storage import Storage, open_storage
from manuscribe.storage.keys import failure_key, manifest_key, safe_name, source_key
from manuscribe.storage.s3 import parse_s3_url, s3_client
from workers.context import job_options
from workers.jobstate import JobState, redis_client

IN_FLIGHT = 8  # files hashed/uploaded concurrently; bounds memory and open files


class SubmitError(Exception):
    """The job cannot be submitted at all (bad job name, job exists, nothing to submit)."""


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


def check_job_name(job: str) -> str:
    if safe_name(job) != job:
        raise SubmitError(f"job name {job!r} may use only letters, digits, '.', '_' and '-'")
    return job


Opener = Callable[[], AbstractContextManager[Path]]


def iter_inputs(inputs: list[str], endpoint_url: str | None) -> Iterator[tuple[str, str, Opener]]:
    """(label, output name, opener) for each input file; s3:// objects are fetched on open."""
    for item in inputs:
        if item.startswith("s3://"):
            yield from _iter_s3(item, endpoint_url)
            continue
        for path, name in discover([Path(item)]):
            yield str(path), name, (lambda p=path: nullcontext(p))


def _iter_s3(url: str, endpoint_url: str | None) -> Iterator[tuple[str, str, Opener]]:
    bucket, prefix = parse_s3_url(url)
    client = s3_client(endpoint_url)
    base = f"{prefix}/" if prefix else ""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
        for item in page.get("Contents", []):
            key = item["Key"]
            if Path(key).suffix.lower() not in SUFFIXES or key.endswith("/"):
                continue
            name = str(Path(key[len(base) :]).with_suffix("").as_posix())

            @contextmanager
            def opener(key=key):
                with tempfile.TemporaryDirectory(prefix="manuscribe-") as tmp:
                    path = Path(tmp) / Path(key).name
                    client.download_file(bucket, key, str(path))
                    yield path

            yield f"s3://{bucket}/{key}", name, opener


def _prepare(label: str, name: str, opener: Opener, storage: Storage, max_mb: int) -> dict:
    """Ingest one file and upload it unless storage has it; returns a manifest entry or failure."""
    with opener() as path:
        try:
            info = ingest(path, name, max_mb)
        except InputError as exc:
            return {"failure": Failure(source=label, name=name, stage="ingest", error=exc.reason)}
        key = source_key(info.sha256, info.ext)
        uploaded = False
        if not storage.exists(key):
            if hasattr(storage, "put_file"):
                storage.put_file(key, path)
            else:
                storage.put(key, path.read_bytes())
            uploaded = True
    return {
        "name": name,
        "source": label,
        "sha256": info.sha256,
        "ext": info.ext,
        "media_type": info.media_type,
        "pages": info.page_count,
        "uploaded": uploaded,
    }


def _share_ocr_model(spec: str, storage, flag: str = "--ocr-model") -> str:
    """A local model file (OCR or segmentation) is uploaded once (by content hash) so every
    worker can fetch it; the job then names it by storage key. Names that every worker resolves
    itself (`default`, `ppocr`, `doi:...`, an empty setting, a storage key) pass through."""
    from manuscribe.engines import rec_models

    passthrough = ("default", "ppocr", "doi:", rec_models.STORAGE_PREFIX)
    if not spec or spec in passthrough or spec.startswith(passthrough):
        return spec
    path = Path(spec).expanduser()
    if not path.is_file():
        raise SubmitError(f"{flag} {spec}: no such file")
    key = rec_models.storage_key_for(path)
    if not storage.exists(key):
        storage.put(key, path.read_bytes())
    return rec_models.STORAGE_PREFIX + key


def submit(
    inputs: list[str],
    settings: Settings,
    job: str | None = None,
    show_progress: bool = True,
    force_correct_queue: bool = False,
) -> dict:
    """Submit a job; returns the `--json` summary ({"job", "documents", "pages_total", ...})."""
    from workers.app import TASK_OCR, make_app

    app = make_app(settings)

    job = check_job_name(job) if job else new_job_id()
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    if hasattr(storage, "ensure_bucket") and settings.s3_endpoint_url:
        storage.ensure_bucket()
    if storage.exists(manifest_key(job)):
        raise SubmitError(f"job {job} exists already; pick another --job name")
    state = JobState(redis_client(settings.broker_url))
    state.r.ping()  # fail before uploading anything if the broker is unreachable
    options = job_options(settings)
    options["ocr_model"] = _share_ocr_model(settings.ocr_model, storage)
    options["seg_model"] = _share_ocr_model(settings.seg_model, storage, "--seg-model")
    if force_correct_queue:
        options["force_correct_queue"] = True
    found = list(iter_inputs(inputs, settings.s3_endpoint_url))  # names only, not contents
    if not found:
        raise SubmitError("no input files found (PDF, TIFF, JPEG, JPEG 2000 or PNG)")

    documents: list[dict] = []
    failures: list[Failure] = []
    used_names: set[str] = set()
    uploaded = 0
    progress = _progress(show_progress)
    with progress, ThreadPoolExecutor(IN_FLIGHT) as pool:
        task = progress.add_task("uploading", total=len(found))
        window: deque[Future] = deque()

        def collect(future: Future) -> None:
            nonlocal uploaded
            entry = future.result()
            progress.advance(task)
            if "failure" in entry:
                failures.append(entry["failure"])
                return
            entry["name"] = _unique(entry["name"], used_names)
            uploaded += entry.pop("uploaded")
            entry["index"] = len(documents)
            documents.append(entry)

        for label, name, opener in found:
            window.append(pool.submit(_prepare, label, name, opener, storage, settings.max_file_mb))
            if len(window) >= IN_FLIGHT * 2:
                collect(window.popleft())
        while window:
            collect(window.popleft())

    for failure in failures:
        record = failure.model_dump() | {"job": job, "document": None, "retryable": False}
        storage.put(failure_key(job, failure.name, None), json.dumps(record, indent=1).encode())
    pages_total = sum(d["pages"] for d in documents)
    manifest = {
        "job": job,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": inputs,
        "options": options,
        "storage_url": storage.url,
        "pages_total": pages_total,
        "documents": documents,
        "failed_documents": [f.model_dump() for f in failures],
    }
    storage.put(manifest_key(job), json.dumps(manifest, indent=1).encode())
    state.create(job, pages_total, len(documents), settings.corrector)
    _enqueue(app, TASK_OCR, job, documents, options, progress_enabled=show_progress)
    return {
        "job": job,
        "documents": len(documents),
        "pages_total": pages_total,
        "sources_uploaded": uploaded,
        "sources_reused": len(documents) - uploaded,
        "documents_failed": len(failures),
        "failures": [{"source": f.source, "error": f.error} for f in failures],
    }


def _enqueue(app, task_name: str, job: str, documents, options, progress_enabled: bool) -> None:
    total = sum(d["pages"] for d in documents)
    with _progress(progress_enabled) as progress, app.producer_or_acquire() as producer:
        task = progress.add_task("enqueueing", total=total)
        for doc in documents:
            for page in range(1, doc["pages"] + 1):
                app.send_task(
                    task_name, args=[job, doc, page, options], queue="ocr", producer=producer
                )
                progress.advance(task)


def _unique(name: str, used: set[str]) -> str:
    """Output names must not collide once sanitised (`a/x` and `a_x` would share a key)."""
    candidate, n = name, 1
    while safe_name(candidate) in used:
        n += 1
        candidate = f"{name}-{n}"
    used.add(safe_name(candidate))
    return candidate


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )
