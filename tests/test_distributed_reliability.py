"""The job survives: kill -9 of an ocr worker mid-page, kill -9 of a correct worker mid-batch,
a Redis restart (AOF) mid-job, and S3 refusing requests for a while. After each, every page is in
`results/` exactly once. Test settings: visibility timeout 6 s, lease renewed every second.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime

import pytest

from tests.distributed_helpers import assert_pages_once, cluster, make_inputs, wait_until
from tests.services import services  # noqa: F401  (session fixture)

pytestmark = pytest.mark.integration

RECEIVED = re.compile(
    r"\[(?P<at>[\d\- :,]+): INFO/MainProcess\] Task (?P<name>\S+)\[(?P<id>[\w-]+)\] received"
)


def _received(log_text: str, name: str) -> list[tuple[float, str]]:
    found = []
    for match in RECEIVED.finditer(log_text):
        if match["name"] == name:
            at = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            found.append((at, match["id"]))
    return found


def _done_pages(c, job: str) -> int:
    return c.status(job)["pages_done"]


def test_killed_ocr_worker_task_is_redelivered_within_seconds(services, tmp_path):  # noqa: F811
    inputs = make_inputs(tmp_path / "in", documents=4, pages=1)
    with cluster(services, "kill-ocr", tmp_path) as c:
        first = c.start("ocr", "--concurrency", "1", ocr=5)
        second = c.start("ocr", "--concurrency", "1", ocr=1)
        c.start("assemble")
        c.submit(inputs, job="k1")
        wait_until(lambda: _received(first.log.read_text(), "manuscribe.ocr_page"), 30, "a page")
        time.sleep(1.5)  # the page takes 5 s: we are in the middle of it
        victim = _received(first.log.read_text(), "manuscribe.ocr_page")[-1][1]
        first.kill9()
        killed_at = time.time()
        status = c.wait("k1", timeout=90)
        assert status["state"] == "done" and status["pages_done"] == 4
        again = [at for at, task in _received(second.log.read_text(), "manuscribe.ocr_page")
                 if task == victim]  # fmt: skip
        assert again, "the killed worker's page was not redelivered"
        delay = again[0] - killed_at
        assert delay < 15, f"redelivered after {delay:.1f}s"  # timeout 6 s + sweep, not an hour
        assert_pages_once(c, "k1", {p.stem: 1 for p in inputs})


def test_killed_correct_worker_batch_is_redone(services, tmp_path):  # noqa: F811
    inputs = make_inputs(tmp_path / "in", documents=2, pages=3)
    with cluster(services, "kill-correct", tmp_path) as c:
        c.start("ocr", "--concurrency", "1")
        c.start("assemble")
        c.submit(inputs, job="k2", force_correct_queue=True)
        wait_until(lambda: c.status("k2")["pages_ocr"] == 6, 60, "OCR of all pages")
        gpu = c.start("correct", correct=4)  # prefetches the six pages, corrects them at once
        wait_until(lambda: "corrected a batch" not in gpu.log.read_text()
                   and len(_received(gpu.log.read_text(), "manuscribe.correct_page")) == 6,
                   30, "a full batch")  # fmt: skip
        time.sleep(1.5)  # inside the 4 s correction call
        gpu.kill9()
        assert c.status("k2")["pages_corrected"] == 0
        survivor = c.start("correct", correct=0.2)
        status = c.wait("k2", timeout=90)
        assert status["state"] == "done" and status["pages_corrected"] == 6
        sizes = [int(n) for n in re.findall(r"a batch of (\d+) pages", survivor.log.read_text())]
        assert sum(sizes) == 6 and max(sizes) > 1  # pages corrected together, each once
        assert len([k for k in c.objects("pages/") if "/correct-" in k]) == 6
        assert_pages_once(c, "k2", {p.stem: 3 for p in inputs})


def test_job_survives_a_redis_restart(services, tmp_path):  # noqa: F811
    inputs = make_inputs(tmp_path / "in", documents=3, pages=2)
    with cluster(services, "redis-restart", tmp_path) as c:
        c.start("ocr", "--concurrency", "1", ocr=1)
        c.start("assemble")
        c.submit(inputs, job="r1")
        wait_until(lambda: _done_pages(c, "r1") >= 1, 60, "first page")
        services.redis.stop()  # AOF (fsync always in tests) keeps queues, unacked and progress
        time.sleep(3)
        services.redis.start()
        status = c.wait("r1", timeout=120)
        assert status["state"] == "done" and status["pages_done"] == 6
        assert_pages_once(c, "r1", {p.stem: 2 for p in inputs})


def test_job_survives_s3_refusing_requests(services, tmp_path):  # noqa: F811
    inputs = make_inputs(tmp_path / "in", documents=3, pages=2)
    with cluster(services, "s3-outage", tmp_path) as c:
        c.start("ocr", "--concurrency", "1", ocr=1)
        c.start("assemble")
        c.submit(inputs, job="s1")
        wait_until(lambda: _done_pages(c, "s1") >= 1, 60, "first page")
        services.weed.stop()  # connections refused while it is down
        time.sleep(5)
        services.weed.start()
        status = c.wait("s1", timeout=150)
        assert status["state"] == "done" and status["pages_done"] == 6
        assert_pages_once(c, "s1", {p.stem: 2 for p in inputs})


def test_long_task_is_not_redelivered_while_its_worker_lives(services, tmp_path):  # noqa: F811
    """A page longer than the visibility timeout: the lease keeps it with its worker."""
    inputs = make_inputs(tmp_path / "in", documents=1, pages=1)
    with cluster(services, "lease", tmp_path) as c:
        first = c.start("ocr", "--concurrency", "1", ocr=10)
        second = c.start("ocr", "--concurrency", "1", ocr=10)
        c.start("assemble")
        c.submit(inputs, job="long")
        assert c.wait("long", timeout=60)["state"] == "done"
        received = [
            task
            for worker in (first, second)
            for _, task in _received(worker.log.read_text(), "manuscribe.ocr_page")
        ]
        assert len(received) == 1, "a 10 s task was handed out twice with a 6 s timeout"


def test_job_survives_s3_throttling(services, tmp_path):  # noqa: F811
    """S3 answers 503 SlowDown to every request for 8 s: botocore and the tasks back off."""
    from tests.services import FlakyProxy

    inputs = make_inputs(tmp_path / "in", documents=2, pages=2)
    proxy = FlakyProxy(services.weed.ports["s3"])
    try:
        with cluster(services, "s3-throttle", tmp_path) as c:
            c.env["MANUSCRIBE_S3_ENDPOINT_URL"] = proxy.endpoint
            os.environ["MANUSCRIBE_S3_ENDPOINT_URL"] = proxy.endpoint
            c.start("ocr", "--concurrency", "1", ocr=1)
            c.start("assemble")
            c.submit(inputs, job="t1")
            wait_until(lambda: _done_pages(c, "t1") >= 1, 60, "first page")
            proxy.failing = True
            time.sleep(8)
            proxy.failing = False
            status = c.wait("t1", timeout=120)
            assert proxy.refused > 0
            assert status["state"] == "done" and status["pages_done"] == 4
            assert_pages_once(c, "t1", {p.stem: 2 for p in inputs})
    finally:
        proxy.close()
