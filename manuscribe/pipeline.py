"""The embedded runner: every stage in one process, pages in parallel, results in a local folder.

Pages stream through a bounded window (rasterise in this thread, recognise in a pool), so memory
does not grow with page count. Stage outputs are cached under `<out>/.manuscribe/` with the same
keys the distributed mode uses in S3; a rerun with the same settings reuses them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from manuscribe.correctors import create_corrector
from manuscribe.engines import create_engine
from manuscribe.engines.base import OcrEngine
from manuscribe.inputs import InputError, SourceInfo, discover, ingest, iter_pages
from manuscribe.model import Failure, Page, StageInfo
from manuscribe.renderers import FOLDER_FORMATS, RenderContext
from manuscribe.report.build import REPORT_DIR, finish_report
from manuscribe.settings import Settings
from manuscribe.stages import (
    assemble_document,
    correct_pages,
    corrector_info,
    engine_info,
    recognise_page,
    render_document,
    report_files,
)
from manuscribe.storage import LocalStorage
from manuscribe.storage.keys import correct_key, failure_key, manifest_key, ocr_key

log = logging.getLogger(__name__)

JOB = "local"  # the embedded run's job name inside the cache folder
CACHE_DIR = ".manuscribe"
CORRECT_CHUNK = (
    16  # pages per correction call: large enough to fill batches, small enough to stream
)


@dataclass
class RunSummary:
    documents: int = 0
    pages: int = 0
    blocks: int = 0
    reused_pages: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0


@dataclass
class _DocState:
    info: SourceInfo
    pages: dict[int, Page] = field(default_factory=dict)
    waiting: int = 0


class _EnginePool:
    """One engine per worker thread: engines keep native state that is not shared safely."""

    def __init__(self, factory: Callable[[], OcrEngine]):
        self._factory = factory
        self._local = threading.local()
        self._all: list[OcrEngine] = []
        self._spare: list[OcrEngine] = []
        self._lock = threading.Lock()

    def adopt(self, engine: OcrEngine) -> None:
        """Hand an engine built already (the start-up probe) to the first worker thread."""
        with self._lock:
            self._spare.append(engine)
            self._all.append(engine)

    def get(self) -> OcrEngine:
        engine = getattr(self._local, "engine", None)
        if engine is None:
            with self._lock:
                engine = self._spare.pop() if self._spare else None
            if engine is None:
                engine = self._factory()
                with self._lock:
                    self._all.append(engine)
            self._local.engine = engine
        return engine

    def close(self) -> None:
        for engine in self._all:
            engine.close()


def run(
    inputs: Iterable[Path],
    out: Path,
    settings: Settings,
    show_progress: bool = False,
    on_page: Callable[[str, int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> RunSummary:
    """Run the whole pipeline over `inputs`, writing `<out>/<name>.<ext>` for each document.

    `on_start(total_pages)` and `on_page(document_name, page_number)` report progress.
    Raises EngineError / CorrectorError when an engine cannot start (nothing would succeed).
    """
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    cache = LocalStorage(out / CACHE_DIR)
    summary = RunSummary()
    for key in list(cache.list(f"jobs/{JOB}/failures/")):
        cache.delete(key)  # failures of an earlier run are this run's to find again

    probe = create_engine(settings.engine, settings)  # fail fast, before any document
    ocr = engine_info(probe, settings)
    corrector = create_corrector(settings.corrector, settings)
    correction = None if corrector.name == "none" else corrector_info(corrector, ocr)

    documents: list[SourceInfo] = []
    for path, name in discover(inputs):
        try:
            documents.append(ingest(path, name, settings.max_file_mb))
        except InputError as exc:
            _record(cache, summary, (path, name), "ingest", exc.reason)
    if on_start:
        on_start(sum(d.page_count for d in documents))

    pool = _EnginePool(lambda: create_engine(settings.engine, settings))
    pool.adopt(probe)
    window = 2 * settings.effective_jobs
    inflight: deque[tuple[_DocState, int, Future]] = deque()

    def finish_page(state: _DocState, number: int, page: Page) -> None:
        state.pages[number] = page
        state.waiting -= 1
        if on_page:
            on_page(state.info.name, number)
        if state.waiting == 0:
            _finish_document(state, out, cache, settings, ocr, corrector, correction, summary)

    def drain_one() -> None:
        state, number, future = inflight.popleft()
        try:
            page = future.result()
            cache.put(
                ocr_key(state.info.sha256, number, ocr.fingerprint), page.model_dump_json().encode()
            )
        except Exception as exc:  # an engine failure on one page must not end the run
            log.debug("page failed", exc_info=True)
            page = _failed_page(state, number, f"recognition failed: {exc}", settings.dpi)
        finish_page(state, number, page)

    try:
        with ThreadPoolExecutor(
            max_workers=settings.effective_jobs, thread_name_prefix="ocr"
        ) as ex:
            for info in documents:
                state = _DocState(info, waiting=info.page_count)
                todo = []
                for number in range(1, info.page_count + 1):
                    key = ocr_key(info.sha256, number, ocr.fingerprint)
                    if cache.exists(key):
                        summary.reused_pages += 1
                        state.pages[number] = Page.model_validate_json(cache.get(key))
                    else:
                        todo.append(number)
                state.waiting = len(todo)
                for number in sorted(state.pages):
                    if on_page:
                        on_page(info.name, number)
                if not todo:
                    _finish_document(
                        state, out, cache, settings, ocr, corrector, correction, summary
                    )
                    continue
                try:
                    for number, image, dpi in iter_pages(
                        info, settings.dpi, settings.max_pixels, todo
                    ):
                        if isinstance(image, InputError):
                            finish_page(
                                state, number, _failed_page(state, number, image.reason, dpi)
                            )
                            continue
                        while len(inflight) >= window:
                            drain_one()
                        future = ex.submit(
                            lambda im=image, n=number, d=dpi: recognise_page(
                                im, n, d, pool.get(), settings
                            )
                        )
                        inflight.append((state, number, future))
                except InputError as exc:  # the whole document became unreadable mid-way
                    _record(cache, summary, info, "rasterise", exc.reason)
                    # pages already queued still finish; the rest are failed pages
                    queued = {n for s, n, _ in inflight if s is state}
                    for number in todo:
                        if number not in state.pages and number not in queued:
                            finish_page(
                                state, number, _failed_page(state, number, exc.reason, settings.dpi)
                            )
            while inflight:
                drain_one()
    finally:
        pool.close()
        corrector.close()

    if any(f in FOLDER_FORMATS for f in settings.formats):
        finish_report(LocalStorage(out), [f.model_dump() for f in summary.failures])
        summary.outputs.append(out / REPORT_DIR / "index.html")
    summary.seconds = time.perf_counter() - started
    _write_manifest(cache, inputs, settings, ocr, correction, documents, summary)
    return summary


def _failed_page(state: _DocState, number: int, reason: str, dpi: int) -> Page:
    return Page(number=number, width=0, height=0, dpi=dpi, error=reason)


def _record(
    cache: LocalStorage,
    summary: RunSummary,
    source: SourceInfo | tuple[Path, str],
    stage: str,
    error: str,
    page: int | None = None,
) -> None:
    """Write a failure record for a document (page None) or one of its pages."""
    path, name = (source.path, source.name) if isinstance(source, SourceInfo) else source
    failure = Failure(source=str(path), name=name, page=page, stage=stage, error=error)
    summary.failures.append(failure)
    cache.put(
        failure_key(JOB, failure.name, failure.page), failure.model_dump_json(indent=1).encode()
    )


def _finish_document(state, out, cache, settings, ocr, corrector, correction, summary) -> None:
    """Correct (cached per page), assemble, render and write one document's outputs."""
    info: SourceInfo = state.info
    pages = [state.pages[n] for n in sorted(state.pages)]
    if correction is not None:
        pages = _correct_cached(pages, info, cache, corrector, correction)
    for page in pages:
        if page.error:
            _record(cache, summary, info, "recognise", page.error, page.number)
    document = assemble_document(info, pages, ocr, correction)
    context = RenderContext(page_image=lambda n: _page_image(info, n, document))
    for extension, data in render_document(document, settings.formats, context).items():
        target = out / f"{info.name}.{extension}"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
        summary.outputs.append(target)
    for key, data in report_files(document, settings.formats, context):  # `html`: report/
        LocalStorage(out).put(key, data)
    summary.documents += 1
    summary.pages += len(pages)
    summary.blocks += sum(len(p.blocks) for p in pages)


def _correct_cached(pages: list[Page], info, cache, corrector, correction: StageInfo) -> list[Page]:
    result: dict[int, Page] = {}
    todo: list[Page] = []
    for page in pages:
        key = correct_key(info.sha256, page.number, correction.fingerprint)
        if page.error:
            result[page.number] = page
        elif cache.exists(key):
            result[page.number] = Page.model_validate_json(cache.get(key))
        else:
            todo.append(page)
    for start in range(0, len(todo), CORRECT_CHUNK):
        for page in correct_pages(todo[start : start + CORRECT_CHUNK], corrector):
            cache.put(
                correct_key(info.sha256, page.number, correction.fingerprint),
                page.model_dump_json().encode(),
            )
            result[page.number] = page
    return [result[n] for n in sorted(result)]


def _page_image(info: SourceInfo, number: int, document):
    page = next(p for p in document.pages if p.number == number)
    for _, image, _ in iter_pages(info, page.dpi, 10**12, [number]):
        if isinstance(image, InputError):
            raise image
        return image
    raise KeyError(number)


def _write_manifest(cache, inputs, settings, ocr, correction, documents, summary) -> None:
    manifest = {
        "job": JOB,
        "inputs": [str(p) for p in inputs],
        "engine": ocr.model_dump(),
        "corrector": correction.model_dump() if correction else None,
        "formats": settings.formats,
        "documents": [
            {"name": d.name, "source": str(d.path), "sha256": d.sha256, "pages": d.page_count}
            for d in documents
        ],
        "summary": {
            "documents": summary.documents,
            "pages": summary.pages,
            "blocks": summary.blocks,
            "reused_pages": summary.reused_pages,
            "failures": len(summary.failures),
            "seconds": round(summary.seconds, 3),
        },
    }
    cache.put(manifest_key(JOB), json.dumps(manifest, indent=1).encode())


def local_status(out: Path) -> dict:
    """Status of an embedded run's output folder, in the shape of `manuscribe status --json`."""
    cache = LocalStorage(out / CACHE_DIR)
    try:
        manifest = json.loads(cache.get(manifest_key(JOB)))
    except KeyError:
        raise FileNotFoundError(
            f"{out} holds no manuscribe run (no {CACHE_DIR}/ manifest)"
        ) from None
    failures = [
        Failure.model_validate_json(cache.get(key)) for key in cache.list(f"jobs/{JOB}/failures/")
    ]
    documents = []
    for doc in manifest["documents"]:
        failed = [f for f in failures if f.name == doc["name"]]
        documents.append(
            {
                "name": doc["name"],
                "source": doc["source"],
                "pages_total": doc["pages"],
                "pages_failed": len({f.page for f in failed if f.page is not None}),
                "failures": [f.model_dump() for f in failed],
            }
        )
    failed_docs = [f for f in failures if f.page is None and f.stage == "ingest"]
    for failure in failed_docs:
        documents.append(
            {
                "name": failure.name,
                "source": failure.source,
                "pages_total": 0,
                "pages_failed": 0,
                "failures": [failure.model_dump()],
            }
        )
    total = sum(d["pages_total"] for d in documents)
    failed = sum(d["pages_failed"] for d in documents)
    if not failures:
        state = "done"
    elif total == failed:
        state = "failed"  # nothing readable at all
    else:
        state = "partial"
    return {
        "job": str(out),
        "state": state,
        "pages_total": total,
        "pages_done": total - failed,
        "pages_failed": failed,
        "documents_failed": len(failed_docs),
        "documents": documents,
    }
