"""Per-process resources of a worker: storage client, job state, engines, corrector, sources.

Everything is created lazily in the process that uses it (after the prefork pool forks), and
engines and the corrector are loaded once per process and reused across tasks. A job's options
(engine, corrector, dpi, formats...) travel in each task message and override the worker's own
settings, so one fleet serves jobs with different options.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from manuscribe.correctors import create_corrector
from manuscribe.engines import create_engine
from manuscribe.inputs import InputError, SourceInfo, iter_pages
from manuscribe.model import StageInfo
from manuscribe.settings import Settings, cache_root, load_settings
from manuscribe.stages import corrector_info, engine_info
from manuscribe.storage import open_storage
from manuscribe.storage.keys import source_key
from workers.app import option
from workers.jobstate import JobState, redis_client

log = logging.getLogger(__name__)

# Options a job carries to every worker; the rest (threads, device, gpu_layers...) are the
# worker's own.
JOB_OPTIONS = (
    "engine",
    "ocr_model",
    "seg_model",
    "seg_page_heights",
    "ocr_second_opinion",
    "ocr_language_model",
    "corrector",
    "model",
    "model_revision",
    "dpi",
    "lang",
    "languages",
    "max_pixels",
    "preprocess",
    "preprocess_below",
    "tesseract_lang",
    "keep_historical_spelling",
    "glossary",
    "max_new_tokens",
    "guard_max_edit_ratio",
    "guard_min_length_ratio",
    "guard_max_length_ratio",
    "guard_min_confidence",
    "gguf_file",
    "formats",
)
ENGINE_OPTIONS = (
    "engine",
    "ocr_model",
    "seg_model",
    "seg_page_heights",
    "ocr_second_opinion",
    "ocr_language_model",
    "tesseract_lang",
)
# what keys a worker's loaded corrector: the job's options less those only OCR and output read
CORRECTOR_OPTIONS = tuple(o for o in JOB_OPTIONS if o not in ("dpi", "formats", *ENGINE_OPTIONS))


def job_options(settings: Settings) -> dict[str, Any]:
    return settings.model_dump(include=set(JOB_OPTIONS), mode="json")


class WorkerContext:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or load_settings()
        self.storage = open_storage(self.settings.storage_url, self.settings.s3_endpoint_url)
        self.state = JobState(redis_client(self.settings.broker_url))
        self._engines: dict[str, tuple[Any, StageInfo]] = {}
        self._corrector: tuple[str, Any] | None = None
        self._lock = threading.Lock()
        self.cache = cache_root(option(self.settings, "cache_dir") or "") / "sources"
        self.cache.mkdir(parents=True, exist_ok=True)
        self._cached_bytes: int | None = None  # known after the first prune; grown per download

    def job_settings(self, options: dict[str, Any]) -> Settings:
        known = {k: v for k, v in options.items() if k in JOB_OPTIONS}
        return self.settings.model_copy(update=known)

    def engine(self, settings: Settings) -> tuple[Any, StageInfo]:
        """The engine for these options, created once per process, with its stage identity."""
        key = json.dumps([getattr(settings, o) for o in ENGINE_OPTIONS])
        with self._lock:
            if key not in self._engines:
                engine = create_engine(settings.engine, settings, self.storage)
                self._engines[key] = (engine, engine_info(engine, settings))
            engine, _ = self._engines[key]
        # the fingerprint also covers dpi and preprocessing, which vary per job
        return engine, engine_info(engine, settings)

    def corrector(self, settings: Settings, ocr: StageInfo) -> tuple[Any, StageInfo]:
        """One corrector (model) per process: a job asking for another model replaces it."""
        key = json.dumps([getattr(settings, o, None) for o in CORRECTOR_OPTIONS], default=str)
        with self._lock:
            if self._corrector is None or self._corrector[0] != key:
                self.close_corrector()
                log.info("loading corrector %s (%s)", settings.corrector, settings.model)
                self._corrector = (key, create_corrector(settings.corrector, settings))
            corrector = self._corrector[1]
        return corrector, corrector_info(corrector, ocr)

    def close_corrector(self) -> None:
        if self._corrector is not None:
            self._corrector[1].close()
            self._corrector = None

    def close(self) -> None:
        self.close_corrector()
        for engine, _ in self._engines.values():
            engine.close()
        self._engines.clear()

    def source(self, doc: dict) -> SourceInfo:
        """A local copy of the document's source (downloaded once per worker, by content hash)."""
        path = self.cache / f"{doc['sha256']}.{doc['ext']}"
        if not path.exists():
            key = source_key(doc["sha256"], doc["ext"])
            if hasattr(self.storage, "get_file"):
                self.storage.get_file(key, path)
            else:
                tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
                tmp.write_bytes(self.storage.get(key))
                os.replace(tmp, path)
            if self._cached_bytes is not None:
                self._cached_bytes += path.stat().st_size
            limit = int(option(self.settings, "cache_mb")) * 2**20
            if self._cached_bytes is None or self._cached_bytes > limit:
                self._prune(limit)  # a full scan only at start and when over the limit
        return SourceInfo(path, doc["name"], doc["sha256"], doc["media_type"], doc["pages"])

    def page_image(self, doc: dict, number: int, dpi: int, max_pixels: int):
        info = self.source(doc)
        for _, image, page_dpi in iter_pages(info, dpi, max_pixels, [number]):
            if isinstance(image, InputError):
                raise InputError(doc["source"], image.reason, number)
            return image, page_dpi
        raise InputError(doc["source"], "page does not exist", number)

    def _prune(self, limit: int) -> None:
        """Delete least recently used sources down to 80 % of the limit (other processes may
        share the folder: a file deleted under a reader is fetched again by its next task)."""
        files = sorted(
            (p for p in self.cache.iterdir() if p.is_file()), key=lambda p: p.stat().st_atime
        )
        total = sum(p.stat().st_size for p in files)
        for path in files[:-1]:  # never the file just fetched
            if total <= limit * 0.8:
                break
            total -= path.stat().st_size
            path.unlink(missing_ok=True)
        self._cached_bytes = total


_context: WorkerContext | None = None
_context_pid: int | None = None


def context() -> WorkerContext:
    """This process's context (a forked child builds its own: clients do not survive fork)."""
    global _context, _context_pid
    if _context is None or _context_pid != os.getpid():
        _context, _context_pid = WorkerContext(), os.getpid()
    return _context


def close_context() -> None:
    global _context
    if _context is not None and _context_pid == os.getpid():
        _context.close()
        _context = None
