"""The demo's live load: threads that enqueue through `migrator.Queue`, as an app would, and note each job."""
from __future__ import annotations

import itertools
import random
import threading
import time
from datetime import timedelta

import psycopg

from migrator.demo import jobs, ledger
from migrator.job import backend_of
from migrator.queue import Queue


class Load(threading.Thread):
    """Enqueues about `rate` jobs a second across the demo's job names until stopped; keys carry `prefix` so
    that several threads never write the same key."""

    def __init__(self, queue: Queue, ledger_url: str, rate: float = 120.0, scheduled_share: float = 0.05,
                 prefix: str = "", seed: int = 7, schedule_within: float = 10.0) -> None:
        super().__init__(name=f"demo-load{prefix}", daemon=True)
        self.queue = queue
        self.ledger_url = ledger_url
        self.rate = rate
        self.scheduled_share = scheduled_share
        self.prefix = prefix
        self.schedule_within = schedule_within
        self.enqueued = 0
        self.errors: list[str] = []
        self._halt = threading.Event()
        self._rng = random.Random(seed)

    def run(self) -> None:
        with psycopg.connect(self.ledger_url, autocommit=True) as conn:
            for i in itertools.count():
                if self._halt.is_set():
                    return
                self._one(conn, i)
                time.sleep(1 / self.rate)

    def _one(self, conn: psycopg.Connection, i: int) -> None:
        if self._rng.random() < self.scheduled_share:
            fn, key = jobs.send_reminder, f"send_reminder{self.prefix}-{i}"
            delay = timedelta(seconds=self._rng.uniform(2, self.schedule_within))
            handle = self.queue.enqueue_in(delay, fn, key, job_id=key)
        else:
            fn = self._rng.choice(jobs.JOBS)
            key = f"{fn.__name__}{self.prefix}-{i}"
            handle = self.queue.enqueue(fn, key, job_id=key)
        ledger.note_enqueued(conn, [(key, backend_of(handle).value)])
        self.enqueued += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(30)
