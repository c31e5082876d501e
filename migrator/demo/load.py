"""The demo's live load: a thread that enqueues through `migrator.Queue`, as an app would, and notes each job."""
from __future__ import annotations

import itertools
import random
import threading
import time
from datetime import timedelta

import psycopg

from migrator.demo import jobs, ledger
from migrator.queue import Queue


class Load(threading.Thread):
    """Enqueues about `rate` jobs a second across the demo's job names until stopped."""

    def __init__(self, queue: Queue, ledger_url: str, rate: float = 120.0, scheduled_share: float = 0.05) -> None:
        super().__init__(name="demo-load", daemon=True)
        self.queue = queue
        self.ledger_url = ledger_url
        self.rate = rate
        self.scheduled_share = scheduled_share
        self.enqueued = 0
        self.errors: list[str] = []
        self._halt = threading.Event()
        self._rng = random.Random(7)

    def run(self) -> None:
        with psycopg.connect(self.ledger_url, autocommit=True) as conn:
            for i in itertools.count():
                if self._halt.is_set():
                    return
                self._one(conn, i)
                time.sleep(1 / self.rate)

    def _one(self, conn: psycopg.Connection, i: int) -> None:
        if self._rng.random() < self.scheduled_share:
            fn, key = jobs.send_reminder, f"send_reminder-{i}"
            handle = self.queue.enqueue_in(timedelta(seconds=self._rng.uniform(2, 30)), fn, key, job_id=key)
        else:
            fn = self._rng.choice(jobs.JOBS)
            key = f"{fn.__name__}-{i}"
            handle = self.queue.enqueue(fn, key, job_id=key)
        ledger.note_enqueued(conn, [(key, handle.backend.value)])
        self.enqueued += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(30)
