"""Leases on unacknowledged messages, so a dead worker's tasks come back in seconds.

Kombu's Redis transport keeps every delivered, unacknowledged message in a hash with a timestamp
(`unacked_index`), and any consumer puts back messages older than the visibility timeout. With a
long timeout a killed worker's task waits an hour; with a short one a long task is handed to a
second worker while the first still runs. A lease solves both: while a worker is alive, a thread
in its main process re-stamps every message it holds (running, prefetched, or waiting for a retry
countdown), so the visibility timeout can be short (30 s) whatever a task's duration is. When the
worker dies (kill -9, OOM, lost machine), the stamps stop and another worker restores the messages
after the timeout. A killed pool child is faster still: `reject_on_worker_lost` requeues at once.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import bootsteps

log = logging.getLogger(__name__)


class LeaseStep(bootsteps.StartStopStep):
    """Consumer bootstep: one daemon thread per worker process that renews held messages."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.consumer = None
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, parent) -> None:
        self.consumer = parent  # re-set after a broker reconnect: the channel is new
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="manuscribe-lease", daemon=True)
            self.thread.start()

    def shutdown(self, parent) -> None:
        self.stop_event.set()

    def _run(self) -> None:
        from workers.app import app, lease_interval
        from workers.jobstate import redis_client

        client = redis_client(app.conf.broker_url)
        interval = lease_interval(app)
        while not self.stop_event.wait(interval):
            try:
                self.renew(client)
            except Exception as exc:  # a broker outage: the next tick tries again
                log.debug("lease renewal failed: %s", exc)

    def renew(self, client) -> int:
        consumer = getattr(self.consumer, "task_consumer", None)
        channel = getattr(consumer, "channel", None)
        qos = getattr(channel, "qos", None)
        if qos is None:
            return 0
        for _ in range(3):  # the consumer thread may change the dict while we copy it
            try:
                tags = list(qos._delivered)
                break
            except RuntimeError:
                continue
        else:
            return 0
        if not tags:
            return 0
        index = getattr(channel, "unacked_index_key", "unacked_index")
        now = time.time()
        # XX: only touch messages still unacknowledged; an acked tag must not come back
        client.zadd(index, {tag: now for tag in tags}, xx=True)
        return len(tags)
