"""A job's live state in Redis: which pages are through which stage, shared by workers and CLI.

Progress is kept in sets of page ids ("<document index>:<page>") rather than counters, so a
redelivered task that finishes the same page twice counts it once; the count is the set's size.
Keys live under `manuscribe:job:<job>:` on the broker's Redis (AOF makes them survive restarts).
"""

from __future__ import annotations

import json
import time

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

STAGE_SETS = ("ocr", "corrected", "done", "failed")


def redis_client(url: str) -> redis.Redis:
    """A client that rides out a Redis restart (about two minutes) instead of failing the task.

    The URL carries the password and `rediss://` (TLS) exactly as the broker's does.
    """
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=5, base=0.2), retries=40),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, BusyLoadingError],
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=15,
        decode_responses=True,
    )


def page_id(doc_index: int, page: int) -> str:
    return f"{doc_index}:{page}"


class JobState:
    def __init__(self, client: redis.Redis):
        self.r = client
        self._remembered: set[tuple[str, str]] = set()

    @staticmethod
    def key(job: str, part: str) -> str:
        return f"manuscribe:job:{job}:{part}"

    # --- submit / cancel ---
    def create(self, job: str, pages_total: int, documents: int, corrector: str) -> None:
        self.r.hset(
            self.key(job, "meta"),
            mapping={
                "pages_total": pages_total,
                "documents": documents,
                "corrector": corrector,
                "created": f"{time.time():.3f}",
                "cancelled": 0,
            },
        )

    def meta(self, job: str) -> dict[str, str]:
        return self.r.hgetall(self.key(job, "meta"))

    def cancel(self, job: str) -> None:
        self.r.hset(self.key(job, "meta"), "cancelled", 1)

    def cancelled(self, job: str) -> bool:
        return self.r.hget(self.key(job, "meta"), "cancelled") == "1"

    # --- stages ---
    def mark(self, job: str, stage: str, member: str) -> None:
        self.r.sadd(self.key(job, stage), member)

    def remember_stage(self, job: str, kind: str, fingerprint: str, info_json: str) -> None:
        """Once per process and job: the stage identity the assembled document will carry."""
        field = f"{kind}:{fingerprint}"
        if (job, field) not in self._remembered:
            self.r.hsetnx(self.key(job, "stages"), field, info_json)
            self._remembered.add((job, field))

    def stage_info(self, job: str, kind: str, fingerprints: list[str]) -> dict | None:
        """The first of `fingerprints` known for the job, or any of its `kind` stages."""
        for fingerprint in fingerprints:
            value = self.r.hget(self.key(job, "stages"), f"{kind}:{fingerprint}")
            if value:
                return json.loads(value)
        for field, value in sorted(self.r.hgetall(self.key(job, "stages")).items()):
            if field.startswith(f"{kind}:"):
                return json.loads(value)
        return None

    def finish_page(self, job: str, doc_index: int, page: int, result_key: str) -> tuple[int, bool]:
        """Record a page's final output; returns (pages of its document finished, was failed)."""
        member = page_id(doc_index, page)
        pipe = self.r.pipeline()
        pipe.hset(self.key(job, "pagekeys"), member, result_key)
        pipe.sadd(self.key(job, "done"), member)
        pipe.srem(self.key(job, "failed"), member)
        pipe.sadd(self.key(job, f"doc:{doc_index}"), page)
        pipe.scard(self.key(job, f"doc:{doc_index}"))
        _, _, was_failed, _, finished = pipe.execute()
        return int(finished), bool(was_failed)

    def fail_page(self, job: str, doc_index: int, page: int) -> int:
        """Record a page that failed for good; returns pages of its document finished."""
        member = page_id(doc_index, page)
        pipe = self.r.pipeline()
        pipe.sadd(self.key(job, "failed"), member)
        pipe.sadd(self.key(job, f"doc:{doc_index}"), page)
        pipe.scard(self.key(job, f"doc:{doc_index}"))
        return int(pipe.execute()[-1])

    def reopen_page(self, job: str, doc_index: int, page: int) -> None:
        """Before a retry: the page counts as pending again until it finishes or fails anew."""
        member = page_id(doc_index, page)
        pipe = self.r.pipeline()
        pipe.srem(self.key(job, "failed"), member)
        pipe.srem(self.key(job, f"doc:{doc_index}"), page)
        pipe.srem(self.key(job, "assembled"), doc_index)
        pipe.srem(self.key(job, "assemble_failed"), doc_index)
        pipe.execute()

    def page_keys(self, job: str, doc_index: int, pages: int) -> list[str | None]:
        """Final output key of pages 1..pages (None where the page has none)."""
        ids = [page_id(doc_index, n) for n in range(1, pages + 1)]
        return self.r.hmget(self.key(job, "pagekeys"), ids)

    def assembled(self, job: str, doc_index: int) -> None:
        pipe = self.r.pipeline()
        pipe.sadd(self.key(job, "assembled"), doc_index)
        pipe.srem(self.key(job, "assemble_failed"), doc_index)
        pipe.execute()

    def assemble_failed(self, job: str, doc_index: int) -> None:
        self.r.sadd(self.key(job, "assemble_failed"), doc_index)

    # --- status ---
    def counts(self, job: str) -> dict[str, int]:
        pipe = self.r.pipeline()
        names = (*STAGE_SETS, "assembled", "assemble_failed")
        for name in names:
            pipe.scard(self.key(job, name))
        return dict(zip(names, map(int, pipe.execute()), strict=True))

    def members(self, job: str, stage: str) -> set[str]:
        return self.r.smembers(self.key(job, stage))
