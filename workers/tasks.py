"""Celery tasks: thin wrappers that call the stage functions and store what they return.

ocr_page (queue `ocr`) -> correct_page (queue `correct`, skipped for corrector `none`) ->
assemble_document (queue `assemble`, once every page of a document is finished or failed).

Delivery is at-least-once; results are exactly-once because every write is a whole object at a key
derived from the content hash and stage fingerprint, and progress is counted in Redis sets.
A task that finds its output already stored skips the work, so a redelivered task, a resubmitted
job and a page corrected as part of another task's batch all cost one `exists` call.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from celery.signals import (
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from manuscribe.inputs import InputError
from manuscribe.model import Failure, Page, StageInfo
from manuscribe.renderers import FOLDER_FORMATS, RenderContext
from manuscribe.report.build import PrefixedSink, finish_report
from manuscribe.stages import (
    assemble_document,
    correct_pages,
    recognise_page,
    render_document,
    report_files,
)
from manuscribe.storage.keys import correct_key, failure_key, ocr_key, result_key, safe_name
from workers.app import TASK_ASSEMBLE, TASK_CORRECT, TASK_OCR, app, option
from workers.context import close_context, context

log = logging.getLogger(__name__)


@worker_process_init.connect
def _warm(**_: Any) -> None:
    """Open clients in the child (not before fork) and load the queue's engine or model now,
    so the first task does not pay for it."""
    if os.environ.get("MANUSCRIBE_WORKER_QUEUE") == "ocr":
        _preload(lambda ctx: ctx.engine(ctx.settings))
    else:
        context()


@worker_ready.connect
def _warm_correct(**_: Any) -> None:
    """The correct worker's pool is threads in this process: load the model once, here."""
    if os.environ.get("MANUSCRIBE_WORKER_QUEUE") == "correct":
        blank = StageInfo(name="", version="", fingerprint="")
        _preload(lambda ctx: ctx.corrector(ctx.settings, blank))


def _preload(load) -> None:
    try:
        load(context())
    except Exception as exc:  # each task will fail with the same error, recorded per page
        log.error("could not preload the stage: %s", exc)


@worker_process_shutdown.connect
@worker_shutdown.connect
def _free(**_: Any) -> None:
    close_context()  # frees the model (GPU memory) on shutdown


def _backoff(retries: int) -> int:
    return min(60, 2 ** (retries + 1))


def _handle(task, exc: Exception, job, doc: dict, page: int | None, stage: str, options, tries=0):
    """Retry a transient error with backoff; record a permanent one (or the last try) as failed."""
    ctx = context()
    permanent = isinstance(exc, InputError)
    retries = task.request.retries
    if not permanent and retries < int(option(ctx.settings, "task_retries")):
        log.warning("%s %s page %s: %s; retry %d", stage, doc["name"], page, exc, retries + 1)
        raise task.retry(exc=exc, countdown=_backoff(retries))
    reason = exc.reason if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
    record = Failure(
        source=doc["source"],
        name=doc["name"],
        page=page,
        stage=stage,
        error=reason,
        tries=tries + retries + 1,
    ).model_dump()
    record.update(job=job, document=doc["index"], retryable=not permanent)
    log.error("%s failed for %s page %s: %s", stage, doc["source"], page, reason)
    try:
        ctx.storage.put(failure_key(job, doc["name"], page), json.dumps(record).encode())
    except Exception as put_error:  # storage still down: the page must count as failed anyway
        log.error("could not write the failure record: %s", put_error)
    if page is None:
        ctx.state.assemble_failed(job, doc["index"])
        formats = ctx.job_settings(options).formats
        if any(f in FOLDER_FORMATS for f in formats) and _others_finished(job, None):
            try:  # the last document failed to assemble: the report still gets its index
                _finish_report(job, PrefixedSink(ctx.storage, f"results/{safe_name(job)}"))
            except Exception as report_error:
                log.error("could not write the report's index: %s", report_error)
    elif ctx.state.fail_page(job, doc["index"], page) == doc["pages"]:
        app.send_task(TASK_ASSEMBLE, args=[job, doc, options], queue="assemble")
    return "failed"


def _finish(job: str, doc: dict, page: int, key: str, options: dict) -> None:
    """The page's last stage is stored: count it, and assemble the document when it is complete."""
    ctx = context()
    finished, was_failed = ctx.state.finish_page(job, doc["index"], page, key)
    if was_failed:  # a retried page that now succeeded: its failure record is history
        ctx.storage.delete(failure_key(job, doc["name"], page))
    if finished >= doc["pages"]:
        app.send_task(TASK_ASSEMBLE, args=[job, doc, options], queue="assemble")


@app.task(bind=True, name=TASK_OCR, acks_late=True, reject_on_worker_lost=True)
def ocr_page(self, job: str, doc: dict, page: int, options: dict, tries_before: int = 0):
    ctx = context()
    settings = ctx.job_settings(options)
    try:
        if ctx.state.cancelled(job):
            return "cancelled"
        engine, info = ctx.engine(settings)
        ctx.state.remember_stage(job, "ocr", info.fingerprint, info.model_dump_json())
        key = ocr_key(doc["sha256"], page, info.fingerprint)
        if not ctx.storage.exists(key):
            image, dpi = ctx.page_image(doc, page, settings.dpi, settings.max_pixels)
            result = recognise_page(image, page, dpi, engine, settings)
            ctx.storage.put(key, result.model_dump_json().encode())
        ctx.state.mark(job, "ocr", f"{doc['index']}:{page}")
        if settings.corrector == "none" and not options.get("force_correct_queue"):
            _finish(job, doc, page, key, options)
        else:
            app.send_task(
                TASK_CORRECT,
                args=[job, doc, page, options, info.model_dump(mode="json"), tries_before],
                queue="correct",
            )
    except Exception as exc:
        return _handle(self, exc, job, doc, page, "recognise", options, tries_before)
    return "ok"


@app.task(bind=True, name=TASK_CORRECT, acks_late=True, reject_on_worker_lost=True)
def correct_page(
    self, job: str, doc: dict, page: int, options: dict, ocr: dict, tries_before: int = 0
):
    ctx = context()
    settings = ctx.job_settings(options)
    try:
        if ctx.state.cancelled(job):
            return "cancelled"
        ocr_info = StageInfo.model_validate(ocr)
        corrector, info = ctx.corrector(settings, ocr_info)
        ctx.state.remember_stage(job, "correct", info.fingerprint, info.model_dump_json())
        key = correct_key(doc["sha256"], page, info.fingerprint)
        if not ctx.storage.exists(key):
            batch = [(doc, page)] + _gather(self, settings, ocr_info.fingerprint, info.fingerprint)
            _correct_batch(batch, ocr_info, info, corrector)
        ctx.state.mark(job, "corrected", f"{doc['index']}:{page}")
        _finish(job, doc, page, key, options)
    except Exception as exc:
        return _handle(self, exc, job, doc, page, "correct", options, tries_before)
    return "ok"


def _gather(task, settings, ocr_fp: str, corr_fp: str) -> list[tuple[dict, int]]:
    """Peers for a batch; while the prefetch buffer is still filling, wait a moment for it.

    A batch of one leaves most of a GPU idle, so up to half a second spent letting the consumer
    bring in more pages pays for itself many times over.
    """
    limit = int(option(settings, "correct_batch_pages")) - 1
    peers = _peers(task, settings, ocr_fp, corr_fp)
    for _ in range(5):
        if len(peers) >= limit:
            break
        time.sleep(0.1)
        more = _peers(task, settings, ocr_fp, corr_fp)
        if len(more) == len(peers):
            break
        peers = more
    return peers


def _peers(task, settings, ocr_fp: str, corr_fp: str) -> list[tuple[dict, int]]:
    """Other correct tasks this worker has prefetched with the same model: one batch for all.

    Their own tasks still run afterwards, find the output stored, and only do the counting; if
    this worker dies mid-batch, every one of them is redelivered, so nothing depends on it.
    """
    from celery.worker import state

    limit = int(option(settings, "correct_batch_pages")) - 1
    peers: list[tuple[dict, int]] = []
    for _ in range(3):
        try:
            requests = list(state.reserved_requests)
            break
        except RuntimeError:  # the consumer thread added one while we copied
            continue
    else:
        return peers
    for request in requests:
        if len(peers) >= limit:
            break
        if request.name != TASK_CORRECT or request.id == task.request.id:
            continue
        try:
            _, doc, page, _, ocr = request.args[:5]
        except (TypeError, ValueError):
            continue
        if ocr.get("fingerprint") != ocr_fp:
            continue
        if not context().storage.exists(correct_key(doc["sha256"], page, corr_fp)):
            peers.append((doc, page))
    return peers


def _correct_batch(batch, ocr_info: StageInfo, info: StageInfo, corrector) -> None:
    storage = context().storage
    pages: list[tuple[dict, Page]] = []
    for position, (doc, number) in enumerate(batch):
        try:
            data = storage.get(ocr_key(doc["sha256"], number, ocr_info.fingerprint))
        except KeyError:
            if position == 0:  # this task's own page: an error to retry, then record
                raise RuntimeError(f"OCR output of page {number} is missing") from None
            continue  # a peer's: its own task will find out
        pages.append((doc, Page.model_validate_json(data)))
    corrected = correct_pages([p for _, p in pages], corrector)
    log.info("corrected a batch of %d pages", len(pages))
    for (doc, _), result in zip(pages, corrected, strict=True):
        key = correct_key(doc["sha256"], result.number, info.fingerprint)
        storage.put(key, result.model_dump_json().encode())


@app.task(bind=True, name=TASK_ASSEMBLE, acks_late=True, reject_on_worker_lost=True)
def assemble_document_task(self, job: str, doc: dict, options: dict):
    """Build the document from its stored pages (failed ones marked), render, write results."""
    ctx = context()
    try:
        if ctx.state.cancelled(job):
            return "cancelled"
        _assemble(job, doc, options)
    except Exception as exc:
        return _handle(self, exc, job, doc, None, "assemble", options)
    return "ok"


def _assemble(job: str, doc: dict, options: dict) -> None:
    ctx = context()
    settings = ctx.job_settings(options)
    pages: list[Page] = []
    used: dict[str, set[str]] = {"ocr": set(), "correct": set()}
    keys = ctx.state.page_keys(job, doc["index"], doc["pages"])
    for number, key in enumerate(keys, start=1):
        if key is None:
            pages.append(_failed_page(job, doc, number, settings.dpi))
            continue
        pages.append(Page.model_validate_json(ctx.storage.get(key)))
        kind, fingerprint = key.rsplit("/", 1)[1].removesuffix(".json").split("-", 1)
        used[kind].add(fingerprint)
    ocr_info = _stage(job, "ocr", used["ocr"]) or StageInfo(
        name=settings.engine, version="", fingerprint=""
    )
    corr_info = _stage(job, "correct", used["correct"]) if used["correct"] else None
    document = assemble_document(_SourceLabel(doc), pages, ocr_info, corr_info)  # type: ignore[arg-type]

    def page_image(number: int):
        dpi = next(p.dpi for p in document.pages if p.number == number)
        return ctx.page_image(doc, number, dpi, 10**12)[0]

    render_context = RenderContext(page_image=page_image)
    outputs = render_document(document, settings.formats, render_context)
    for extension, data in outputs.items():
        ctx.storage.put(result_key(job, doc["name"], extension), data)
    results = PrefixedSink(ctx.storage, f"results/{safe_name(job)}")
    for key, data in report_files(document, settings.formats, render_context):  # `html`
        results.put(key, data)
    if not any(f in FOLDER_FORMATS for f in settings.formats):
        ctx.state.assembled(job, doc["index"])
        return
    # the last document writes the report's index before it counts as assembled, so that a job
    # reads as finished only once its report is whole
    if _others_finished(job, doc["index"]):
        _finish_report(job, results)
        ctx.state.assembled(job, doc["index"])
        return
    ctx.state.assembled(job, doc["index"])
    if _others_finished(job, None):  # the last two finished at once: both looked early
        _finish_report(job, results)


def _others_finished(job: str, doc_index: int | None) -> bool:
    """Whether every document but `doc_index` (None: every document at all) is assembled or
    failed to."""
    ctx = context()
    state = ctx.state
    finished = state.members(job, "assembled") | state.members(job, "assemble_failed")
    finished.discard(str(doc_index))
    return len(finished) >= int(ctx.state.meta(job).get("documents", 0)) - (doc_index is not None)


def _finish_report(job: str, results: PrefixedSink) -> None:
    """Write the report's index in S3 (every document's pages are there)."""
    from producer.status import failure_records

    ctx = context()
    finish_report(results, failure_records(ctx.storage, job))


class _SourceLabel:
    """What assemble_document reads from a SourceInfo, with the user's file name as `source`."""

    def __init__(self, doc: dict):
        from pathlib import Path

        self.path = Path(doc["source"])
        self.name = doc["name"]
        self.sha256 = doc["sha256"]
        self.media_type = doc["media_type"]


def _failed_page(job: str, doc: dict, number: int, dpi: int) -> Page:
    try:
        record = json.loads(context().storage.get(failure_key(job, doc["name"], number)))
        reason = record["error"]
    except KeyError:
        reason = "page did not finish"
    return Page(number=number, width=0, height=0, dpi=dpi, error=reason)


def _stage(job: str, kind: str, fingerprints: set[str]) -> StageInfo | None:
    """The stage identity for the document (the first, if a mixed fleet produced several)."""
    data = context().state.stage_info(job, kind, sorted(fingerprints))
    return StageInfo.model_validate(data) if data else None
