"""Helpers for the distributed tests: small generated inputs, a cluster of workers per test, and
the check that every page of every document is in `results/` exactly once."""

from __future__ import annotations

import itertools
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import text_page
from tests.services import Services, Worker, wait_for

_db = itertools.count(1)


def make_pdf(path: Path, pages: int, label: str) -> Path:
    """A PDF of small printed pages (100 dpi), quick to recognise."""
    images = [
        text_page([f"{label} page {n}", "Paris le 3 mai 1916"], size=(520, 260), font_size=30)
        for n in range(1, pages + 1)
    ]
    images[0].save(path, "PDF", resolution=100, save_all=True, append_images=images[1:])
    return path


def make_inputs(folder: Path, documents: int, pages: int = 1) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [make_pdf(folder / f"doc{n:02d}.pdf", pages, f"doc{n}") for n in range(documents)]


class Cluster:
    """Environment (own Redis db and storage prefix) plus the workers a test started."""

    def __init__(self, services: Services, name: str, root: Path):
        self.services = services
        self.root = root
        self.env = services.env(name)
        self.env["MANUSCRIBE_BROKER_URL"] = services.redis.url.rsplit("/", 1)[0] + f"/{next(_db)}"
        self.workers: list[Worker] = []

    def start(self, queue: str, *args: str, wait: bool = True, **delays: float) -> Worker:
        log = self.root / f"{queue}-{len(self.workers)}.log"
        worker = Worker(queue, self.env, log, *args, **delays)
        self.workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    def settings(self):
        from manuscribe.settings import load_settings

        return load_settings()

    def submit(self, inputs, **kwargs) -> dict:
        from producer.submit import submit

        return submit([str(p) for p in inputs], self.settings(), show_progress=False, **kwargs)

    def status(self, job: str) -> dict:
        from producer.status import job_status

        return job_status(job, self.settings())

    def wait(self, job: str, timeout: float = 120) -> dict:
        def finished():
            status = self.status(job)
            return status if status["state"] in ("done", "partial", "failed") else None

        return wait_for(finished, timeout, f"job {job}", interval=0.5)

    def objects(self, prefix: str = "") -> dict[str, dict]:
        client = self.services.weed.client()
        base = f"{self.env['MANUSCRIBE_STORAGE_URL'].split('/', 3)[3]}/{prefix}"
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.services.weed.bucket, Prefix=base
        ):
            for item in page.get("Contents", []):
                found[item["Key"][len(base) :]] = item
        return found

    def result_documents(self, job: str) -> dict[str, dict]:
        client = self.services.weed.client()
        docs = {}
        for key in self.objects(f"results/{job}/"):
            if key.endswith(".json"):
                full = f"{self.env['MANUSCRIBE_STORAGE_URL'].split('/', 3)[3]}/results/{job}/{key}"
                body = client.get_object(Bucket=self.services.weed.bucket, Key=full)["Body"]
                docs[key.removesuffix(".json")] = json.loads(body.read())
        return docs

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


@contextmanager
def cluster(services: Services, name: str, root: Path):
    """Point this process (submit, status) at the cluster's env; stop its workers afterwards."""
    found = Cluster(services, name, root)
    saved = {k: os.environ.get(k) for k in found.env}
    os.environ.update(found.env)
    try:
        yield found
    finally:
        found.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def assert_pages_once(cluster: Cluster, job: str, expected: dict[str, int]) -> None:
    """Every expected document is in results with pages 1..n, each exactly once, nothing else."""
    docs = cluster.result_documents(job)
    assert set(docs) == set(expected), f"results: {sorted(docs)}, expected {sorted(expected)}"
    for name, count in expected.items():
        numbers = [page["number"] for page in docs[name]["pages"]]
        assert numbers == list(range(1, count + 1)), f"{name}: pages {numbers}"
        assert all(not page.get("error") for page in docs[name]["pages"]), name
    leftovers = [k for k in cluster.objects(f"results/{job}/") if ".part" in k or "tmp" in k]
    assert not leftovers


def wait_until(check, timeout: float, what: str):
    return wait_for(check, timeout, what, interval=0.05)


def elapsed(start: float) -> float:
    return time.monotonic() - start
