"""The new backend's half of a transfer: land jobs from RQ exactly once, and take jobs out for RQ.

Why a table beside the jobs: a job inserted from RQ may run and be deleted (result_ttl 0) before the RQ side is
cleaned up, so the job row cannot prove it was inserted; a marker in migrator_transfers, written in the same
transaction, can. A job taken out for RQ lives in that table (its whole row) until RQ confirms it: no worker
can claim it there, and a re-run finds it.
"""
from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import psycopg

from adapters import payload
from adapters.base import BackendError, JobSpec, RetryPolicy
from adapters.pg_backend import db
from adapters.pg_backend import sql as named
from adapters.pg_backend.backend import EPOCH, PostgresBackend, callback_fields

LOCK_KEY = 0x6D747266  # "mtrf": one transfer at a time per database
LOCK_WAIT = 30.0  # seconds: a killed transfer's session ends at once on a local socket, later on a dead host
LAND_ATTEMPTS = 5  # a chunk's land re-checked after the app inserted one of its ids meanwhile


def _q(backend: PostgresBackend) -> dict[str, str]:
    return named.queries(backend.db.schema, "transfer.sql")


@contextlib.contextmanager
def transfer_lock(backend: PostgresBackend, wait: float = LOCK_WAIT) -> Iterator[None]:
    """Hold the transfer lock on a session of its own: two transfers never recover the same held jobs."""
    conn = db.connect(backend.url)
    try:
        deadline = time.monotonic() + wait
        while not conn.execute(_q(backend)["lock_transfer"], {"key": LOCK_KEY}).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() > deadline:
                raise BackendError("another `migrator transfer` is running on this database; wait for it to end")
            time.sleep(0.2)
        yield
    finally:
        conn.close()  # ends the session, and with it the lock


def _ids(backend: PostgresBackend, name: str, ids: Sequence[str], conn: psycopg.Connection[Any] | None = None
         ) -> set[str]:
    with backend.db.connection(conn) as c:
        return {row[0] for row in c.execute(_q(backend)[name], {"ids": _json(ids)}).fetchall()}


def existing_ids(backend: PostgresBackend, ids: Sequence[str]) -> set[str]:
    return _ids(backend, "existing_ids", ids) if ids else set()


def parents_with_dependents(backend: PostgresBackend, ids: Sequence[str]) -> set[str]:
    return _ids(backend, "parents_with_dependents", ids) if ids else set()


# -- from RQ ---------------------------------------------------------------------------------------------------
def land(backend: PostgresBackend, specs: Sequence[JobSpec]) -> tuple[set[str], set[str]]:
    """Insert jobs held from RQ, exactly once: (done, conflicts). `done` are in Postgres now, or were inserted by
    an earlier run; `conflicts` use an id that Postgres already has for another job: they were not inserted."""
    for _ in range(LAND_ATTEMPTS):
        try:
            return _land_once(backend, specs)
        except psycopg.errors.UniqueViolation:  # the app enqueued one of these ids since the check: check again
            continue
    raise BackendError("job ids kept appearing in Postgres while transferring; run transfer again")


def _land_once(backend: PostgresBackend, specs: Sequence[JobSpec]) -> tuple[set[str], set[str]]:
    """One transaction: the ids checked, then the fresh ones marked and copied straight in (checked=True: no
    staging table, no ON CONFLICT; an id inserted by someone else after the check fails the COPY, never skipped,
    so that a job is never taken for landed when another job holds its id)."""
    ids = [s.job_id or "" for s in specs]
    with backend.db.connection() as c, c.transaction():
        found = c.execute(_q(backend)["land_check"], {"ids": _json(ids)}).fetchall()
        landed = {job_id for job_id, kind in found if kind == "landed"}
        conflicts = {job_id for job_id, kind in found if kind == "exists"} - landed
        fresh = [s for s in specs if s.job_id not in landed and s.job_id not in conflicts]
        if fresh:
            c.execute(_q(backend)["mark_landed"], {"ids": _json([s.job_id or "" for s in fresh])})
            backend.enqueue_many(fresh, conn=c, checked=True)
    return set(ids) - conflicts, conflicts


def forget_landed(backend: PostgresBackend, ids: Sequence[str]) -> None:
    if ids:
        _exec(backend, "forget_landed", ids=_json(ids))


def sweep_landed(backend: PostgresBackend, held: Sequence[str]) -> None:
    """Drop markers of moves whose RQ side is already clean (only while holding the transfer lock)."""
    _exec(backend, "sweep_landed", held=_json(held))


def _json(ids: Sequence[str]) -> str:
    """A list of ids as the queries of transfer.sql take it: one JSON text (see there why)."""
    return json.dumps(list(ids))


def _exec(backend: PostgresBackend, name: str, **params: Any) -> None:
    with backend.db.connection() as c:
        c.execute(_q(backend)[name], params)


# -- to RQ -----------------------------------------------------------------------------------------------------
def take(backend: PostgresBackend, ids: Sequence[str]) -> list[JobSpec]:
    """Move these not-started jobs out of reach of workers (committed); the ones it could take, as specs."""
    with backend.db.connection() as c:
        rows = c.execute(_q(backend)["take_jobs"], {"ids": _json(ids)}).fetchall()
    return [spec_from_row(row[0]) for row in rows]


def held(backend: PostgresBackend) -> list[JobSpec]:
    """Jobs an interrupted transfer to RQ took out and did not finish."""
    with backend.db.connection() as c:
        return [spec_from_row(row[0]) for row in c.execute(_q(backend)["held_jobs"]).fetchall()]


def forget_held(backend: PostgresBackend, ids: Sequence[str]) -> None:
    if ids:
        _exec(backend, "forget_held", ids=_json(ids))


def restore_held(backend: PostgresBackend, ids: Sequence[str]) -> None:
    if ids:
        _exec(backend, "restore_held", ids=_json(ids))


def spec_from_row(row: dict[str, Any]) -> JobSpec:
    """A JobSpec from a job row as to_jsonb wrote it (only rows that never ran are taken: the retry budget is
    whole)."""
    run_at = datetime.fromisoformat(row["run_at"])
    future = run_at > datetime.now(timezone.utc)
    retry = RetryPolicy(row["retry_max"], tuple(row["retry_intervals"] or ())) if row["retry_max"] else None
    return JobSpec(job_name=row["func"], args=tuple(payload.decode_value(row["args"])),
                   kwargs=payload.decode_value(row["kwargs"]), queue=row["queue"], job_id=row["id"],
                   timeout=row["timeout_s"], result_ttl=row["result_ttl"], ttl=row["ttl"],
                   failure_ttl=row["failure_ttl"], retry=retry, meta=payload.decode_value(row["meta"]),
                   description=row["description"], run_at=run_at if future else None,
                   priority=row["priority"], at_front=run_at == EPOCH,
                   **callback_fields(row.get("callbacks")))
