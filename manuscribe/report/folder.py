"""`manuscribe report DIR`: the review report over an output folder that already exists.

Works on an embedded run's folder and on `manuscribe results JOB --out DIR`: it reads every
document JSON in DIR (one at a time), finds each source to draw its pages, and writes DIR/report/.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from manuscribe.model import Document
from manuscribe.report.build import REPORT_DIR, finish_report, write_document
from manuscribe.report.sources import CACHE_DIR, SourceFinder
from manuscribe.report.truth import document_truth
from manuscribe.storage import LocalStorage, Storage
from manuscribe.truth_files import TruthFolder


class ReportError(Exception):
    pass


def document_paths(folder: Path) -> Iterator[Path]:
    """JSON files of the folder outside its cache and its report, in name order."""
    for path in sorted(folder.rglob("*.json")):
        parts = path.relative_to(folder).parts
        if parts[0] in (CACHE_DIR, REPORT_DIR) or any(p.startswith(".") for p in parts):
            continue
        yield path


def load_document(path: Path) -> Document | None:
    try:
        return Document.model_validate_json(path.read_bytes())
    except ValueError:  # some other JSON (ground truth, a summary): not a document
        return None


def clear_report(folder: Path) -> None:
    """Remove an earlier report's pages and data (never a folder the report did not write)."""
    root = folder / REPORT_DIR
    if not root.exists():
        return
    if any(root.iterdir()) and not (root / "assets" / "report.css").is_file():
        raise ReportError(f"{root} exists and is not a manuscribe report; move it away first")
    for name in ("docs", "data"):
        shutil.rmtree(root / name, ignore_errors=True)


def failure_records(folder: Path) -> list[dict]:
    records = []
    for path in sorted((folder / CACHE_DIR / "jobs").glob("*/failures/*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return records


def build_report(
    folder: Path,
    gt_dir: Path | None = None,
    storage: Storage | None = None,
    images: bool = True,
) -> dict:
    """Write `folder/report/`; returns counts and the seconds it took."""
    started = time.perf_counter()
    if not folder.is_dir():
        raise ReportError(f"{folder} is not a folder")
    clear_report(folder)
    sink = LocalStorage(folder)
    finder = SourceFinder(folder, storage) if images else None
    documents = without_scan = 0
    truth_folder = TruthFolder(gt_dir) if gt_dir else None  # XML ground truth indexed once
    try:
        for path in document_paths(folder):
            document = load_document(path)
            if document is None:
                continue
            page_image = finder.page_image(document) if finder else None
            without_scan += page_image is None
            truth = document_truth(document, path, truth_folder) if truth_folder else None
            write_document(sink, document, page_image, truth)
            documents += 1
    finally:
        if finder:
            finder.close()
    if documents == 0 and not failure_records(folder):
        raise ReportError(f"no manuscribe document JSON in {folder}")
    totals = finish_report(sink, failure_records(folder))
    totals["documents_without_scan"] = without_scan
    totals["seconds"] = round(time.perf_counter() - started, 3)
    totals["index"] = str(folder / REPORT_DIR / "index.html")
    return totals
