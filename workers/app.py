"""The Celery app: broker from settings, three queues, and the reliability settings.

Queues: `ocr` (CPU), `correct` (GPU), `assemble` (light). Tasks are acknowledged only after they
finish (`acks_late`) and requeued if their process dies (`reject_on_worker_lost`); leases
(workers.lease) keep the visibility timeout short without duplicating long tasks. No result
backend: progress lives in Redis sets (workers.jobstate) and outputs in storage.
"""

from __future__ import annotations

import ssl

from celery import Celery
from kombu import Queue

from manuscribe.settings import Settings, load_settings
from workers.lease import LeaseStep

QUEUES = ("ocr", "correct", "assemble")
TASK_OCR = "manuscribe.ocr_page"
TASK_CORRECT = "manuscribe.correct_page"
TASK_ASSEMBLE = "manuscribe.assemble_document"

# Settings this module reads with getattr (see docs/distributed.md); defaults here until the
# lead adds them to Settings and config/manuscribe.toml.
DEFAULTS = {
    "visibility_timeout": 30,  # seconds an unrenewed message stays with a silent worker
    "lease_interval": 5,  # seconds between lease renewals (well under the timeout)
    "task_retries": 5,  # retries of a transient failure before the page is recorded failed
    "retry_rounds": 3,  # `manuscribe retry` re-enqueues a page at most this many times
    "correct_batch_pages": 32,  # pages a correct worker prefetches and corrects in one call
    "cache_dir": "",  # worker's local copy of sources; empty = ~/.cache/manuscribe
    "cache_mb": 2048,
}


def option(settings: Settings, name: str):
    """A distributed-mode setting (Settings reads MANUSCRIBE_<NAME> and config/manuscribe.toml)."""
    return getattr(settings, name, DEFAULTS[name])


def make_app(settings: Settings | None = None) -> Celery:
    settings = settings or load_settings()
    app = Celery("manuscribe", broker=settings.broker_url, include=["workers.tasks"])
    visibility = int(option(settings, "visibility_timeout"))
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,  # our tasks record failures themselves
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="ocr",
        task_routes={
            TASK_OCR: {"queue": "ocr"},
            TASK_CORRECT: {"queue": "correct"},
            TASK_ASSEMBLE: {"queue": "assemble"},
        },
        broker_transport_options={
            "visibility_timeout": visibility,
            "unacked_restore_interval": max(1, min(5, visibility // 6)),
            "unacked_restore_throttle": 1,
            "health_check_interval": 10,
            "socket_connect_timeout": 5,
            "socket_timeout": 30,
            "socket_keepalive": True,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for Redis rather than exiting
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 40,
            "interval_start": 0.2,
            "interval_step": 1,
            "interval_max": 5,
        },
        worker_send_task_events=True,  # Flower
        task_send_sent_event=True,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        manuscribe_lease_interval=int(option(settings, "lease_interval")),
    )
    if settings.broker_url.startswith("rediss://") and "ssl_cert_reqs" not in settings.broker_url:
        app.conf.broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    app.steps["consumer"].add(LeaseStep)
    return app


def lease_interval(celery_app: Celery) -> int:
    return int(celery_app.conf.get("manuscribe_lease_interval", DEFAULTS["lease_interval"]))


app = make_app()
