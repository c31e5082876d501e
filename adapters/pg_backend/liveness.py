"""How the new backend knows a worker is alive, and what happens when it is not.

Why a session advisory lock (as GoodJob does) rather than leases alone: Postgres itself releases the lock the
moment the worker's session ends (SIGKILL, crash, lost connection; a vanished machine after the server-side
TCP keepalives give up), so recovery does not wait for a long lease to run out, and a live worker, whose
session holds the lock, never has its jobs taken. One lock per worker process (not per job) keeps claiming
cheap. The heartbeat adds a grace period: a worker whose session dropped during a Postgres restart gets
`grace` seconds to reconnect and take its lock back before its running jobs are requeued.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

import psycopg

from adapters.base import BackendError, BackendUnavailable
from adapters.pg_backend import db

LOCK_NAMESPACE = 0x6D6A6F62  # "mjob": first key of pg_advisory_lock(int, int); the second is the worker id
APPLICATION_NAME = "migrator-worker-liveness"  # the lock's session, as pg_stat_activity names it
log = logging.getLogger("migrator.worker")


class WorkerLockHeld(BackendError):
    """Another session holds this worker id's liveness lock: two workers must never share an id."""


class Liveness:
    """The worker's registration: its id, its advisory lock on a dedicated session, and a heartbeat thread."""

    def __init__(self, database: db.Database, queues: list[str], heartbeat_seconds: float = 1.0) -> None:
        self.db = database
        self.queues = queues
        self.heartbeat_seconds = heartbeat_seconds
        self.worker_id: int | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        self._conn = db.connect(self.db.url, keepalive=True, application_name=APPLICATION_NAME)
        row = self.db.fetch_one("next_worker_id", conn=self._conn)
        assert row is not None
        self.worker_id = int(row[0])
        self._lock_and_register()
        self._thread = threading.Thread(target=self._beat, name="migrator-heartbeat", daemon=True)
        self._thread.start()
        return self.worker_id

    def _lock_and_register(self) -> None:
        # Lock first, then insert the row: the reaper must never see a registered worker without its lock.
        assert self._conn is not None
        got = self.db.fetch_one("lock_worker", {"namespace": LOCK_NAMESPACE, "id": self.worker_id}, conn=self._conn)
        if not got or not got[0]:
            raise WorkerLockHeld(f"worker lock {self.worker_id} is held by another session; start the worker again")
        self.db.execute("register_worker", {"id": self.worker_id, "hostname": socket.gethostname(),
                                            "pid": os.getpid(), "queues": self.queues}, conn=self._conn)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = db.connect(self.db.url, keepalive=True, application_name=APPLICATION_NAME)
                    self._lock_and_register()
                    log.warning("worker %s reconnected to postgres and holds its lock again", self.worker_id)
                if not self.db.fetch_all("heartbeat", {"id": self.worker_id}, conn=self._conn):
                    self._lock_and_register()  # the row was reaped while we were away: register again
            except (psycopg.Error, BackendError) as exc:
                log.warning("heartbeat of worker %s failed: %s", self.worker_id, exc)
                self._drop_conn()

    def _drop_conn(self) -> None:
        db.close_quietly(self._conn)
        self._conn = None

    def stop(self) -> None:
        """Unregister and release the lock (by closing its session)."""
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        try:
            if self._conn is not None and not self._conn.closed:
                self.db.execute("unregister_worker", {"id": self.worker_id}, conn=self._conn)
        except (psycopg.Error, BackendUnavailable):
            pass
        self._drop_conn()


def reap_orphans(database: db.Database, grace: float, max_interrupts: int,
                 conn: psycopg.Connection[Any] | None = None) -> list[tuple[str, str]]:
    """Requeue (or fail, past max_interrupts) the running jobs of dead workers; returns (job id, new state)."""
    rows = database.fetch_all("reap_orphans", {"namespace": LOCK_NAMESPACE, "grace": grace,
                                               "max_interrupts": max_interrupts}, conn=conn)
    return [(r[0], r[1]) for r in rows]
