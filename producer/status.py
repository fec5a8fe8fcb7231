"""`manuscribe status JOB`: progress from the Redis sets, documents from the manifest, reasons from
the failure records; one dict (the `--json` shape of the design) rendered as tables and a bar.
"""

from __future__ import annotations

import json
from collections import defaultdict

from rich.console import Console, Group
from rich.progress_bar import ProgressBar
from rich.table import Table

from manuscribe.settings import Settings
from manuscribe.storage import Storage, open_storage
from manuscribe.storage.keys import manifest_key, safe_name
from workers.jobstate import JobState, redis_client

TERMINAL = ("done", "partial", "failed")


class JobNotFound(KeyError):
    pass


def load_manifest(storage: Storage, job: str) -> dict:
    try:
        return json.loads(storage.get(manifest_key(job)))
    except KeyError:
        raise JobNotFound(f"no job {job!r} in {storage.url}") from None


def failure_records(storage: Storage, job: str) -> list[dict]:
    records = []
    for key in storage.list(f"jobs/{safe_name(job)}/failures/"):
        try:
            records.append(json.loads(storage.get(key)))
        except KeyError:  # deleted by a worker since the listing (the page succeeded)
            continue
    return records


def job_status(job: str, settings: Settings) -> dict:
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    manifest = load_manifest(storage, job)
    state = JobState(redis_client(settings.broker_url))
    meta = state.meta(job)
    sets = {name: state.members(job, name) for name in ("ocr", "corrected", "done", "failed")}
    assembled = state.members(job, "assembled")
    unassembled = state.members(job, "assemble_failed") - assembled
    per_doc: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name, members in sets.items():
        for member in members:
            per_doc[member.split(":", 1)[0]][name] += 1
    records = failure_records(storage, job)
    by_doc: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_doc[record.get("name", "")].append(record)

    documents = []
    for doc in manifest["documents"]:
        counts = per_doc.get(str(doc["index"]), {})
        finished = counts.get("done", 0) + counts.get("failed", 0)
        if str(doc["index"]) in unassembled:
            doc_state = "failed"  # every page is stored; `retry` renders it again
        elif str(doc["index"]) in assembled and finished >= doc["pages"]:
            doc_state = (
                "failed"
                if counts.get("done", 0) == 0
                else ("partial" if counts.get("failed", 0) else "done")
            )
        else:
            doc_state = "running" if counts.get("ocr", 0) or finished else "queued"
        documents.append(
            {
                "name": doc["name"],
                "source": doc["source"],
                "state": doc_state,
                "pages_total": doc["pages"],
                "pages_ocr": counts.get("ocr", 0),
                "pages_corrected": counts.get("corrected", 0),
                "pages_done": counts.get("done", 0),
                "pages_failed": counts.get("failed", 0),
                "failures": by_doc.get(doc["name"], []),
            }
        )
    for failure in manifest.get("failed_documents", []):
        documents.append(
            {
                "name": failure["name"],
                "source": failure["source"],
                "state": "failed",
                "pages_total": 0,
                "pages_ocr": 0,
                "pages_corrected": 0,
                "pages_done": 0,
                "pages_failed": 0,
                "failures": [failure],
            }
        )
    return _summary(job, manifest, meta, sets, assembled, unassembled, documents)


def _summary(job, manifest, meta, sets, assembled, unassembled, documents) -> dict:
    total = int(manifest.get("pages_total", 0))
    done, failed = len(sets["done"]), len(sets["failed"])
    docs_failed = len(manifest.get("failed_documents", []))
    cancelled = meta.get("cancelled") == "1"
    ended = len(assembled) + len(unassembled)
    complete = done + failed >= total and ended >= len(manifest["documents"])
    if complete or cancelled:
        if done == 0 and (total or docs_failed):
            state = "failed"
        elif failed or docs_failed or unassembled or done < total:
            state = "partial"
        else:
            state = "done"
    elif done + failed == 0 and not sets["ocr"]:
        state = "queued"
    else:
        state = "running"
    return {
        "job": job,
        "state": state,
        "cancelled": cancelled,
        "pages_total": total,
        "pages_ocr": len(sets["ocr"]),
        "pages_corrected": len(sets["corrected"]),
        "pages_done": done,
        "pages_failed": failed,
        "documents_total": len(manifest["documents"]) + docs_failed,
        "documents_assembled": len(assembled),
        "documents_failed": docs_failed,
        "corrector": manifest.get("options", {}).get("corrector"),
        "documents": documents,
    }


def status_view(status: dict, max_rows: int = 20) -> Group:
    """Summary line, progress bar, then documents that are not simply done, and failure reasons."""
    total = max(1, status["pages_total"])
    finished = status["pages_done"] + status["pages_failed"]
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[bold]{status['job']}[/]",
        f"state [bold]{status['state']}[/]" + (" (cancelled)" if status.get("cancelled") else ""),
        f"pages {status['pages_total']}",
        f"ocr {status.get('pages_ocr', '-')}",
        f"corrected {status.get('pages_corrected', '-')}",
        f"done {status['pages_done']}",
        f"[red]failed {status['pages_failed']}[/]" if status["pages_failed"] else "failed 0",
    )
    parts: list = [head, ProgressBar(total=total, completed=finished, width=60)]
    rows = [d for d in status["documents"] if d.get("state", "done") != "done" or d["failures"]]
    if rows:
        table = Table("document", "state", "pages", "done", "failed", "reason")
        for doc in rows[:max_rows]:
            reasons = "; ".join(
                (f"p{f['page']}: " if f.get("page") else "") + str(f.get("error", ""))
                for f in doc["failures"][:3]
            )
            table.add_row(
                doc["name"],
                doc.get("state", ""),
                str(doc["pages_total"]),
                str(doc["pages_done"]),
                str(doc["pages_failed"]),
                reasons,
            )
        parts.append(table)
        if len(rows) > max_rows:
            parts.append(f"... and {len(rows) - max_rows} more (use --json for all)")
    return Group(*parts)


def render_status(status: dict, console: Console) -> None:
    console.print(status_view(status))
