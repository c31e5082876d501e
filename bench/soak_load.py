"""The soak's app: threads enqueuing through `migrator.Queue` as an app would, each job noted in the ledger (kept
on a Postgres of its own that the soak never crashes: the referee), every enqueue error and latency counted."""
from __future__ import annotations

import itertools
import random
import threading
import time
from datetime import timedelta
from typing import Any

import psycopg
from rq import Retry

from migrator.demo import jobs, ledger
from migrator.job import backend_of
from migrator.queue import Queue

RETRY = Retry(max=3, interval=1)  # RQ re-runs an abandoned job (its worker killed) only when it has retries left
LONG_SHARE = 0.01  # jobs of 3 s (build_report): workers are often caught mid-job when killed


def job_name(fn: Any) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


class Load(threading.Thread):
    """About `rate` enqueues a second, until stopped; keys carry `prefix`, so threads never share a key."""

    def __init__(self, queue: Queue, ledger_url: str, rate: float, prefix: str, seed: int,
                 schedule_within: float = 15.0) -> None:
        super().__init__(name=f"soak-load{prefix}", daemon=True)
        self.queue, self.ledger_url, self.rate, self.prefix = queue, ledger_url, rate, prefix
        self.schedule_within = schedule_within
        self.enqueued = 0
        self.errors: list[str] = []
        self.latencies: list[float] = []
        self._halt = threading.Event()
        self._rng = random.Random(seed)

    def run(self) -> None:
        with psycopg.connect(self.ledger_url, autocommit=True) as conn:
            for i in itertools.count():
                if self._halt.wait(1 / self.rate):
                    return
                self._one(conn, i)

    def _one(self, conn: psycopg.Connection[Any], i: int) -> None:
        roll = self._rng.random()
        started = time.perf_counter()
        try:
            if roll < 0.05:
                key = f"send_reminder{self.prefix}-{i}"
                delay = timedelta(seconds=self._rng.uniform(1, self.schedule_within))
                handle = self.queue.enqueue_in(delay, jobs.send_reminder, key, job_id=key, retry=RETRY)
            else:
                fn = jobs.build_report if roll < 0.05 + LONG_SHARE else self._rng.choice(jobs.JOBS)
                key = f"{fn.__name__}{self.prefix}-{i}"
                handle = self.queue.enqueue(fn, key, job_id=key, retry=RETRY)
        except Exception as exc:  # what the app would see: counted, never hidden
            self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            return
        finally:
            self.latencies.append(time.perf_counter() - started)
        ledger.note_enqueued(conn, [(key, backend_of(handle).value)])
        self.enqueued += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(60)


def burst(queue: Queue, ledger_url: str, n: int, prefix: str, ahead: tuple[float, float]) -> tuple[int, list[str]]:
    """n reminders scheduled `ahead` seconds from now (beyond the transfer's margin for due jobs): work for a
    transfer to move. Returns (enqueued, errors)."""
    rng = random.Random(prefix)
    errors: list[str] = []
    done: list[tuple[str, str]] = []
    for i in range(n):
        key = f"burst{prefix}-{i}"
        try:
            handle = queue.enqueue_in(timedelta(seconds=rng.uniform(*ahead)), jobs.send_reminder, key, job_id=key,
                                      retry=RETRY)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
            continue
        done.append((key, backend_of(handle).value))
    with psycopg.connect(ledger_url, autocommit=True) as conn:
        ledger.note_enqueued(conn, done)
    return len(done), errors


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
