"""Playbook runs in Postgres behind adapters.base.PlaybookState: playbook.sql's named queries, the runner's lock on
a session of its own, psycopg errors translated here."""
from __future__ import annotations

import contextlib
import os
import socket
import zlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from adapters.base import BackendError, LockHolder, PlaybookRunRow, PlaybookStepRow, SchemaMissing
from adapters.pg_backend import db

LOCK_NAMESPACE = 0x6D706C62  # "mplb": first key of pg_advisory_lock(int, int); the second is the playbook's
APP_PREFIX = "migrator-playbook "  # application_name of the lock's session: "migrator-playbook HOST:PID"


def lock_key(playbook: str) -> int:
    """The playbook's lock key: a positive 31-bit hash, the same in every process (unlike hash())."""
    return zlib.crc32(playbook.encode("utf-8")) & 0x7FFFFFFF


@contextlib.contextmanager
def translated(url: str) -> Iterator[None]:
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        raise SchemaMissing("postgres", db.masked(url), "the playbook tables") from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise db.unavailable(url, exc) from exc
    except psycopg.Error as exc:
        raise BackendError(f"postgres at {db.masked(url)} refused a playbook statement: {exc}") from exc


def _run(row: tuple[Any, ...]) -> PlaybookRunRow:
    return PlaybookRunRow(int(row[0]), row[1], row[2], row[3], int(row[4]), row[5], row[6], row[7], row[8])


class PgPlaybookState:
    """Runs and steps of playbooks in one database and schema. Each call is one short connection; the lock lives
    on a connection of its own for as long as the run holds it."""

    def __init__(self, url: str, schema: str = "public", timeout: float = 5.0) -> None:
        self.url, self.schema, self.timeout = url, schema, timeout
        self.location = db.masked(url)
        self.db = db.Database(url, schema, pool_size=1, filename="playbook.sql")  # its pool never opens
        self._locks: dict[str, psycopg.Connection[Any]] = {}

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with translated(self.url):
            conn = db.connect(self.url, application_name="migrator-playbook-state", timeout=self.timeout)
            try:
                yield conn
            finally:
                conn.close()

    def try_lock(self, playbook: str) -> LockHolder | None:
        if playbook in self._locks:
            return None
        name = f"{APP_PREFIX}{socket.gethostname()}:{os.getpid()}"[:63]
        with translated(self.url):
            # keepalive: if this machine vanishes, Postgres ends the session, and so frees the lock, in ~25 s
            conn = db.connect(self.url, application_name=name, keepalive=True, timeout=self.timeout)
            row = self.db.fetch_one("try_lock_playbook", self._key(playbook), conn=conn)
        if row and row[0]:
            self._locks[playbook] = conn
            return None
        conn.close()
        return self.holder(playbook) or LockHolder("?", 0, datetime.now().astimezone())

    def release_lock(self, playbook: str) -> None:
        conn = self._locks.pop(playbook, None)
        if conn is not None:
            try:
                conn.close()  # ending the session frees its advisory lock
            except psycopg.Error:
                pass

    def holder(self, playbook: str) -> LockHolder | None:
        with self._connection() as conn:
            row = self.db.fetch_one("lock_holder", self._key(playbook), conn=conn)
        if row is None:
            return None
        app, since = row
        host, _, pid = str(app).removeprefix(APP_PREFIX).rpartition(":")
        return LockHolder(host or "?", int(pid) if pid.isdigit() else 0, since)

    @staticmethod
    def _key(playbook: str) -> dict[str, Any]:
        return {"namespace": LOCK_NAMESPACE, "key": lock_key(playbook)}

    def latest_run(self, playbook: str) -> PlaybookRunRow | None:
        with self._connection() as conn:
            row = self.db.fetch_one("latest_run", {"playbook": playbook}, conn=conn)
        return _run(row) if row else None

    def active_runs(self) -> list[PlaybookRunRow]:
        with self._connection() as conn:
            rows = self.db.fetch_all("active_runs", conn=conn)
        return [r for r in map(_run, rows) if r.status in ("running", "stopped")]

    def start_run(self, playbook: str, fingerprint: str) -> PlaybookRunRow:
        with self._connection() as conn:
            row = self.db.fetch_one("start_run", {"playbook": playbook, "fingerprint": fingerprint}, conn=conn)
        assert row is not None
        return _run(row)

    def set_run(self, run_id: int, status: str, step: int, message: str = "") -> None:
        with self._connection() as conn:
            self.db.execute("set_run", {"id": run_id, "status": status, "step": step, "message": message}, conn=conn)

    def steps(self, run_id: int) -> list[PlaybookStepRow]:
        with self._connection() as conn:
            rows = self.db.fetch_all("run_steps", {"run_id": run_id}, conn=conn)
        return [PlaybookStepRow(int(r[0]), int(r[1]), r[2], r[3], r[4] or {}, r[5] or {}, r[6], r[7]) for r in rows]

    def save_step(self, run_id: int, index: int, kind: str, status: str, intent: Mapping[str, Any],
                  outcome: Mapping[str, Any], advance_to: int | None = None) -> None:
        with self._connection() as conn:
            self.db.execute("save_step", {"run_id": run_id, "idx": index, "kind": kind, "status": status,
                                          "intent": Jsonb(dict(intent)), "outcome": Jsonb(dict(outcome)),
                                          "next": advance_to}, conn=conn)

    def close(self) -> None:
        for playbook in list(self._locks):
            self.release_lock(playbook)
