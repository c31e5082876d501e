"""How many jobs a worker process claims, and the claimed-but-unstarted rest of a batch: a claim size that adapts
to how long jobs take, and a releaser thread that hands the rest back as soon as the job in front turns out slow.
"""
from __future__ import annotations

import collections
import json
import logging
import threading
import time
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads

from adapters.base import BackendError
from adapters.pg_backend import db
from adapters.pg_backend.executor import Claimed

log = logging.getLogger("migrator.worker")


class ClaimSize:
    """How many jobs to claim next: about `budget` seconds of work by the running average of job run times, so
    near-instant jobs still cost one round trip per batch (up to `batch`) while slow ones are claimed one at a
    time and the N processes of --concurrency N run N of them at once. A job that ran `slow` seconds or more sets
    the average to its own time at once; other jobs move it by ALPHA, so one no-op that the OS preempted for a
    few milliseconds hardly changes the claim. The size starts at one, doubles at most per batch, and goes back
    to one when the queue runs dry: a worker that knows nothing of the jobs ahead must not hide a queue of slow
    ones from its idle siblings."""

    ALPHA = 0.05

    def __init__(self, batch: int, budget: float, slow: float) -> None:
        self.batch = batch
        self.budget = budget
        self.slow = slow
        self.average = 0.0
        self.size = 1

    def observe(self, seconds: float) -> bool:
        """Note one job's run time; True when it was slow (the caller hands back the rest of its batch)."""
        self.average += self.ALPHA * (seconds - self.average)
        if seconds >= self.slow:
            self.average = max(self.average, seconds)
            self.size = 1
            return True
        return False

    def grow(self) -> None:
        """After a batch: double, within the budget."""
        fits = int(self.budget / self.average) if self.average > 0 else self.batch
        self.size = max(1, min(self.batch, self.size * 2, fits))

    def reset(self) -> None:
        self.size = 1


_EMPTY_JSON: dict[bytes | str, type] = {b"[]": list, b"{}": dict, "[]": list, "{}": dict}


def _loads(data: bytes | str) -> Any:
    empty = _EMPTY_JSON.get(data)
    return empty() if empty is not None else json.loads(data)


def decode_quickly(conn: psycopg.Connection[Any]) -> None:
    """Read the JSON columns of claimed rows on `conn` with a shortcut for the empty args, kwargs and meta most
    jobs have: three json.loads a job were a fifth of what a claim cost the worker."""
    set_json_loads(_loads, conn)


def claim(database: db.Database, conn: psycopg.Connection[Any], queues: list[str], limit: int,
          worker_id: int | None) -> list[Claimed]:
    """Claim up to `limit` runnable jobs, in the order they must start."""
    rows = database.fetch_all("claim_jobs", {"queues": queues, "limit": limit, "worker_id": worker_id}, conn=conn)
    jobs = [Claimed(*row) for row in rows]
    jobs.sort(key=lambda j: (-j.priority, j.run_at, j.id))
    return jobs


def release(database: db.Database, conn: psycopg.Connection[Any], jobs: list[Claimed], worker_id: int | None) -> None:
    """Give claimed, unstarted jobs back to their queue (attempt not counted); the NOTIFY wakes idle workers."""
    if jobs:
        database.fetch_all("release_jobs", {"ids": [j.id for j in jobs], "worker_id": worker_id}, conn=conn)


class Held:
    """The current batch's jobs that have not started, shared by the main thread (which starts them in order)
    and the releaser thread (which takes them all once the running job has run `slow` seconds). Whoever takes a
    job under the lock owns it: the main thread runs it, the releaser gives it back; never both."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: collections.deque[Claimed] = collections.deque()
        self._running_since: float | None = None
        self.held_since = time.monotonic()  # when the newest held jobs were claimed
        self.armed = threading.Event()  # set while jobs wait behind a running one: the releaser watches

    def hold(self, jobs: list[Claimed]) -> None:
        with self._lock:
            self._jobs.extend(jobs)
            self.held_since = time.monotonic()
            if len(self._jobs) > 1 or (self._jobs and self._running_since is not None):
                self.armed.set()

    def __len__(self) -> int:
        return len(self._jobs)

    def start_next(self) -> Claimed | None:
        """The next job to run, marked running now; None when the batch is done (or was taken back)."""
        with self._lock:
            if not self._jobs:
                self._running_since = None
                return None
            self._running_since = time.monotonic()
            return self._jobs.popleft()

    def job_done(self) -> None:
        self._running_since = None

    def take_all(self) -> list[Claimed]:
        with self._lock:
            taken = list(self._jobs)
            self._jobs.clear()
            return taken

    def take_if_stuck(self, slow: float) -> list[Claimed]:
        """Everything held, if the running job has run `slow` seconds; disarms once nothing is held."""
        with self._lock:
            since = self._running_since
            if self._jobs and since is not None and time.monotonic() - since >= slow:
                taken = list(self._jobs)
                self._jobs.clear()
            else:
                taken = []
            if not self._jobs:
                self.armed.clear()
            return taken

    def give_back(self, jobs: list[Claimed]) -> None:
        """Jobs the releaser could not release (Postgres unreachable): the main thread runs or releases them."""
        with self._lock:
            self._jobs.extendleft(reversed(jobs))


class Releaser:
    """A thread with its own session that releases the held jobs of a batch whose running job has run `slow`
    seconds, while that job runs: the main thread cannot, it is inside the job. Without it a 4 s job would hold
    the rest of its batch for 4 s while sibling processes idle.

    It also claims ahead, when the main thread asks (jobs are fast and its batch is running out): the next batch
    is claimed on this session while the main thread runs the end of the current one, so Postgres's work on the
    claim overlaps the jobs instead of following them. Those jobs go into `held` like any other, so a slow job
    among them or before them hands them back the same way."""

    def __init__(self, database: db.Database, held: Held, worker_id: int | None, slow: float,
                 queues: list[str] | None = None, sync_commit: bool = True) -> None:
        self.db = database
        self.held = held
        self.worker_id = worker_id
        self.slow = slow
        self.queues = queues or []
        self.sync_commit = sync_commit  # off as on the worker's own session: see WorkerOptions.sync_commit
        self.poll = max(slow / 2, 0.005)  # a held job waits at most slow + poll behind a slow one
        self._conn: psycopg.Connection[Any] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._ahead = 0  # jobs the main thread asked to claim ahead
        self.claimed = threading.Event()  # no claim ahead asked or in flight
        self.claimed.set()
        self.claim_lost = False  # a claim ahead broke with its connection: it may have claimed rows unseen
        self._thread = threading.Thread(target=self._run, name="migrator-releaser", daemon=True)

    def start(self) -> Releaser:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.held.armed.set()  # wake it
        self._thread.join(5)
        db.close_quietly(self._conn)
        self._conn = None

    def claim_ahead(self, limit: int) -> None:
        """Ask for the next `limit` jobs to be claimed into `held` (the main thread; one claim at a time)."""
        self.claimed.clear()
        self._ahead = limit
        self._wake.set()
        self.held.armed.set()

    def ready(self) -> bool:
        """Whether it can take a claim ahead now (none in flight, the thread alive)."""
        return self.claimed.is_set() and self._thread.is_alive()

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until no claim ahead is in flight: its jobs, if any, are in `held` then."""
        if not self.claimed.wait(timeout):
            log.warning("a claim ahead is still in flight after %.0fs", timeout)

    def _run(self) -> None:
        # A claim asked for is looked for at the top of every turn: take_if_stuck may disarm `held` just after
        # claim_ahead armed it, and a wait on `armed` alone would then strand the claim (and the main thread).
        while not self._stop.is_set():
            if self._ahead:
                self._claim_ahead()
                continue
            if not self.held.armed.wait(1.0) or self._ahead:
                continue
            if self._wake.wait(self.poll):  # woken early: asked to claim ahead, or to stop
                self._wake.clear()
                continue
            jobs = self.held.take_if_stuck(self.slow)
            if jobs:
                self._release(jobs)

    def _claim_ahead(self) -> None:
        limit, self._ahead = self._ahead, 0
        self._wake.clear()
        try:
            self.held.hold(claim(self.db, self._connection(), self.queues, limit, self.worker_id))
        except (psycopg.Error, BackendError) as exc:
            log.warning("could not claim ahead (%s); the worker claims for itself", exc)
            db.close_quietly(self._conn)
            self._conn = None
            self.claim_lost = True  # its claim may have committed with the reply lost: the worker settles that
        finally:
            self.claimed.set()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = db.connect(self.db.url, application_name=f"migrator-releaser-{self.worker_id}")
            if not self.sync_commit:
                self._conn.execute("SET synchronous_commit = off")
            decode_quickly(self._conn)
        return self._conn

    def _release(self, jobs: list[Claimed]) -> None:
        try:
            release(self.db, self._connection(), jobs, self.worker_id)
            log.debug("handed %s unstarted jobs back: the running job is slow", len(jobs))
        except (psycopg.Error, BackendError) as exc:
            log.warning("could not hand back %s unstarted jobs (%s); the worker will", len(jobs), exc)
            db.close_quietly(self._conn)
            self._conn = None
            self.held.give_back(jobs)
