"""End to end through Redis, Celery workers and SeaweedFS: submit, status, results, retry, cancel.

Runs the `none` corrector; one test forces pages through the `correct` queue anyway, so the GPU
worker's path (prefetch, batch across pages, store, assemble) runs with real messages.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.distributed_helpers import (
    assert_pages_once,
    cluster,
    make_inputs,
    make_pdf,
    wait_until,
)
from tests.requires import require_module
from tests.services import REPO, services  # noqa: F401  (session fixture)

pytestmark = pytest.mark.integration


def _bad_inputs(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj broken")
    (folder / "notes.pdf").write_bytes(b"just some text, not a PDF")
    pikepdf = require_module("pikepdf", "pip install -e . (a core dependency)")
    plain = make_pdf(folder / "plain.tmp", 1, "secret")
    with pikepdf.open(plain) as pdf:
        pdf.save(folder / "locked.pdf", encryption=pikepdf.Encryption(owner="o", user="u"))
    plain.unlink()
    return [folder / "corrupt.pdf", folder / "notes.pdf", folder / "locked.pdf"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from manuscribe.cli import app; app()", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=os.environ.copy(),
        timeout=120,
    )


def test_job_with_bad_inputs_completes_and_reports_them(services, tmp_path):  # noqa: F811
    good = make_inputs(tmp_path / "in", documents=3, pages=2)
    bad = _bad_inputs(tmp_path / "bad")
    with cluster(services, "jobs", tmp_path) as c:
        c.start("ocr", "--concurrency", "1")
        c.start("assemble")
        submitted = c.submit([tmp_path / "in", *bad], job="mixed")
        assert submitted["pages_total"] == 6 and submitted["documents_failed"] == 3
        status = c.wait("mixed", timeout=120)
        assert status["state"] == "partial"
        assert (status["pages_total"], status["pages_done"], status["pages_failed"]) == (6, 6, 0)
        reasons = {
            d["name"]: d["failures"][0]["error"] for d in status["documents"] if d["failures"]
        }
        assert reasons == {
            "corrupt": reasons["corrupt"],
            "notes": "not a PDF, TIFF, JPEG, JPEG 2000 or PNG file",
            "locked": "PDF is password-protected",
        }
        assert "corrupt" in reasons["corrupt"]
        records = c.objects("jobs/mixed/failures/")
        assert sorted(records) == [
            "corrupt.document.json",
            "locked.document.json",
            "notes.document.json",
        ]
        assert_pages_once(c, "mixed", {p.stem: 2 for p in good})

        # the CLI shows the same, with the design's --json fields
        shown = json.loads(_cli("status", "mixed", "--json").stdout)
        assert {"job", "state", "pages_total", "pages_done", "pages_failed", "documents"} <= set(
            shown
        )
        assert shown["state"] == "partial"
        text = _cli("status", "mixed").stdout
        assert "password-protected" in text

        # retry does not loop on input errors: nothing is re-enqueued, each says why
        retried = json.loads(_cli("retry", "mixed", "--json").stdout)
        assert retried["requeued"] == [] and len(retried["skipped"]) == 3

        # results download: one file per document and format, nothing outside the folder
        out = tmp_path / "out"
        assert _cli("results", "mixed", "--out", str(out)).returncode == 0
        assert sorted(p.name for p in out.iterdir()) == sorted(
            f"{p.stem}.{ext}" for p in good for ext in ("json", "txt")
        )

        # resubmitting the same inputs reuses sources and finished pages
        pages_before = {k: v["LastModified"] for k, v in c.objects("pages/").items()}
        again = json.loads(_cli("submit", str(tmp_path / "in"), "--job", "again", "--json").stdout)
        assert again["job"] == "again" and again["sources_reused"] == 3
        assert c.wait("again")["state"] == "done"
        pages_after = {k: v["LastModified"] for k, v in c.objects("pages/").items()}
        assert pages_after == pages_before  # not one OCR output rewritten
        assert_pages_once(c, "again", {p.stem: 2 for p in good})


def test_page_failures_are_recorded_and_retry_is_bounded(services, tmp_path):  # noqa: F811
    """A page too large to render fails for good: recorded, shown, never re-enqueued."""
    inputs = make_inputs(tmp_path / "in", documents=2, pages=1)
    with cluster(services, "limits", tmp_path) as c:
        os.environ["MANUSCRIBE_MAX_PIXELS"] = "1000"  # every page is over the limit
        try:
            c.start("ocr", "--concurrency", "1")
            c.start("assemble")
            c.submit(inputs, job="huge")
        finally:
            del os.environ["MANUSCRIBE_MAX_PIXELS"]
        status = c.wait("huge", timeout=90)
        assert status["state"] == "failed" and status["pages_failed"] == 2
        failure = status["documents"][0]["failures"][0]
        assert failure["page"] == 1 and "over the limit" in failure["error"]
        assert failure["tries"] == 1  # an input error is not retried by the task either
        from producer.manage import retry_job

        result = retry_job("huge", c.settings())
        assert result["requeued"] == [] and len(result["skipped"]) == 2
        docs = c.result_documents("huge")  # the document is still assembled, page marked failed
        assert docs["doc00"]["pages"][0]["error"]


def test_correct_queue_batches_pages_and_cancel_stops_queued_work(services, tmp_path):  # noqa: F811
    inputs = make_inputs(tmp_path / "in", documents=2, pages=3)
    with cluster(services, "correct", tmp_path) as c:
        c.start("ocr", "--concurrency", "1")
        c.start("assemble")
        c.submit(inputs, job="viaqueue", force_correct_queue=True)
        wait_until(lambda: c.status("viaqueue")["pages_ocr"] == 6, 60, "OCR of all pages")
        c.start("correct")
        status = c.wait("viaqueue", timeout=120)
        assert status["state"] == "done" and status["pages_corrected"] == 6
        assert_pages_once(c, "viaqueue", {p.stem: 3 for p in inputs})
        docs = c.result_documents("viaqueue")
        blocks = [b for d in docs.values() for p in d["pages"] for b in p["blocks"]]
        assert blocks and all(b["correction"]["status"] == "skipped" for b in blocks)
        assert len(c.objects("pages/")) == 12  # 6 OCR + 6 correction outputs, no duplicates
        log = (tmp_path / "correct-2.log").read_text()
        sizes = [int(n) for n in re.findall(r"a batch of (\d+) pages", log)]
        assert sum(sizes) == 6 and max(sizes) > 1  # prefetched pages corrected in one call

        # cancel: queued pages are skipped, the job ends instead of running on
        for worker in c.workers[:1]:
            worker.stop()
        more = make_inputs(tmp_path / "more", documents=3, pages=2)
        c.submit(more, job="stopme")
        from producer.manage import cancel_job

        assert cancel_job("stopme", c.settings())["pages_skipped"] == 6
        c.start("ocr", "--concurrency", "1")
        status = c.wait("stopme", timeout=60)
        assert status["cancelled"] and status["state"] == "failed" and status["pages_done"] == 0


def test_submit_streams_many_files_in_bounded_memory(services, tmp_path):  # noqa: F811
    """30 then 300 files of 200 KB: the extra 54 MB of input barely moves submit's peak memory.

    The growth is compared, not an absolute peak: the fixed part (Celery app, S3 client, their
    imports) varies between machines and versions, the part that grows with the number of files
    must stay small. Holding every file's contents makes the growth the whole 54 MB.
    """
    import tracemalloc

    one = make_pdf(tmp_path / "one.pdf", 1, "many").read_bytes()
    pad = 200_000

    def folder_of(name: str, count: int):
        folder = tmp_path / name
        folder.mkdir()
        for n in range(count):  # distinct contents, so that each file is uploaded
            tail = f"\n%{name}-{n}\n".encode()
            (folder / f"f{n:03d}.pdf").write_bytes(one + b"%" + b"x" * pad + tail)
        return folder

    small, large = 30, 300
    with cluster(services, "many", tmp_path) as c:
        c.submit([folder_of("warm", 2)], job="warm")  # imports and first connections: not measured
        peaks = {}
        for count in (small, large):
            folder = folder_of(f"n{count}", count)
            tracemalloc.start()
            try:
                result = c.submit([folder], job=f"many{count}")
                peaks[count] = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert result["pages_total"] == count and result["sources_uploaded"] == count
        growth = peaks[large] - peaks[small]
        extra_input = (large - small) * (len(one) + pad)
        # the manifest and the page tasks grow with the count, by a few KB a file; contents may not
        assert growth < extra_input / 5, (
            f"submit peaked at {peaks[small] / 2**20:.1f} MB for {small} files and "
            f"{peaks[large] / 2**20:.1f} MB for {large}: {growth / 2**20:.1f} MB more for "
            f"{extra_input / 2**20:.0f} MB more input"
        )
        import redis

        queued = redis.Redis.from_url(c.env["MANUSCRIBE_BROKER_URL"]).llen("ocr")
        assert queued == 2 + small + large  # one task per page, none run (no worker)
        from producer.manage import cancel_job

        for job in ("warm", f"many{small}", f"many{large}"):
            cancel_job(job, c.settings())


def test_submit_takes_s3_uris(services, tmp_path):  # noqa: F811
    """`submit s3://bucket/prefix` lists the objects and submits each like a local file."""
    client = services.weed.client()
    for n in range(2):
        pdf = make_pdf(tmp_path / f"s{n}.pdf", 2, f"s3 input {n}")
        client.upload_file(str(pdf), services.weed.bucket, f"inbox/box1/s{n}.pdf")
    client.put_object(Bucket=services.weed.bucket, Key="inbox/readme.md", Body=b"not an input")
    with cluster(services, "s3in", tmp_path) as c:
        result = c.submit([f"s3://{services.weed.bucket}/inbox"], job="froms3")
        assert (result["documents"], result["pages_total"]) == (2, 4)
        from manuscribe.storage import open_storage
        from producer.status import load_manifest

        settings = c.settings()
        storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
        names = [d["name"] for d in load_manifest(storage, "froms3")["documents"]]
        assert names == ["box1/s0", "box1/s1"]
        from producer.manage import cancel_job

        cancel_job("froms3", settings)
