"""PostgresBackend: enqueue (one, many, scheduled, transactional) and inspection of the new backend."""
from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import psycopg

from adapters import payload
from adapters.spec import CALLBACKS, from_enqueue_data
from adapters.base import (DEFAULT_FAILURE_TTL, DEFAULT_TIMEOUT, BackendName, DuplicateJob, Enqueued, Inventory,
                           InvalidJobOperation, JobInfo, JobRefused, JobSpec, JobState, PendingJob, PickleOptIn,
                           RetryPolicy, RunStats, StateCount, Watch, WorkerInfo)
from adapters.pg_backend import bulk
from adapters.pg_backend import db as pg_db
from adapters.pg_backend import pickled, remaining
from adapters.pg_backend.db import Database
from adapters.pg_backend.liveness import LOCK_NAMESPACE

EPOCH = bulk.EPOCH  # run_at of an at_front job: ahead of every other
CALLBACK_TIMEOUT = 60  # seconds, RQ's default for a callback (rq.defaults.CALLBACK_TIMEOUT)
LIVE_STATES = {"queued": JobState.QUEUED, "deferred": JobState.DEFERRED, "running": JobState.STARTED,
               "finished": JobState.FINISHED, "failed": JobState.FAILED, "canceled": JobState.CANCELED}


def new_job_id() -> str:
    return str(uuid.uuid4())


_run_at = bulk.run_at
_callbacks = bulk.callbacks_json


def _atomic(conn: psycopg.Connection[Any]) -> contextlib.AbstractContextManager[Any]:
    """A transaction of our own on an autocommit connection; inside the app's transaction, nothing (psycopg's
    transaction() would COMMIT an app connection that was idle, breaking transactional enqueue)."""
    return conn.transaction() if conn.autocommit else contextlib.nullcontext()


def row_params(spec: JobSpec, pickles: PickleOptIn = PickleOptIn()) -> dict[str, Any]:
    """The insert parameters of one job; JobRefused when an option or a value cannot be carried. Arguments go as
    tagged JSON; only those of a job `pickles` opts in that tagged JSON refuses go pickled, apart (pickled.py)."""
    try:
        args, kwargs = payload.encode_call(spec.args, dict(spec.kwargs))
        carried = None
    except JobRefused as exc:
        args, kwargs, carried = pickled.carry(spec, pickles, exc)
    return {
        "id": spec.job_id or new_job_id(), "queue": spec.queue, "func": spec.job_name, "args": args, "kwargs": kwargs,
        "meta": payload.encode_json(dict(spec.meta), "meta") if spec.meta else "{}", "description": spec.description,
        "priority": spec.priority, "run_at": _run_at(spec),
        "timeout_s": DEFAULT_TIMEOUT if spec.timeout is None else int(spec.timeout),
        "result_ttl": spec.result_ttl, "ttl": spec.ttl, "failure_ttl": spec.failure_ttl,
        "retry_max": spec.retry.max if spec.retry else 0,
        "retry_intervals": list(spec.retry.intervals) if spec.retry else [],
        "callbacks": _callbacks(spec), "pickled_payload": carried,
    }


def callback_fields(callbacks: Mapping[str, Any] | None) -> dict[str, Any]:
    """JobSpec's callback fields from the callbacks column (read back by fetch_job, iter_pending, transfer)."""
    callbacks = callbacks or {}
    fields: dict[str, Any] = {name: c["func"] for name, c in callbacks.items() if name in CALLBACKS}
    fields["callback_timeouts"] = {name: int(c["timeout"]) for name, c in callbacks.items()
                                   if name in CALLBACKS and c.get("timeout") not in (None, CALLBACK_TIMEOUT)}
    return fields


class PostgresBackend:
    """The new backend's enqueue and inspection API (the worker lives in worker.py)."""

    name = BackendName.POSTGRES

    def __init__(self, url: str, schema: str = "public", pool_size: int = 4, synchronous_commit: bool = True,
                 pickles: PickleOptIn = PickleOptIn()) -> None:
        """`pickles` (pickle_payloads, off by default) names the jobs whose arguments may travel pickled when tagged
        JSON cannot carry them (docs/security.md). `synchronous_commit=False` (opt-in, `enqueue_synchronous_commit = false` in migrator.toml) stops
        enqueues waiting for the WAL flush: about twice the single-enqueue rate, at the price of losing the last
        fraction of a second of enqueued jobs if the *Postgres server* crashes, as Redis with its default
        persistence would. Enqueues on the app's own connection follow the app's setting."""
        self.db = Database(url, schema, pool_size, synchronous_commit)
        self.pickles = pickles

    @property
    def url(self) -> str:
        return self.db.url

    def ping(self) -> None:
        """One plain connection, not the pool: the pool would log every failed attempt before it gave up."""
        pg_db.connect(self.url, application_name="migrator-ping").close()

    def close(self) -> None:
        self.db.close()

    # -- enqueue ---------------------------------------------------------------------------------------------
    def enqueue(self, spec: JobSpec, conn: psycopg.Connection[Any] | None = None) -> Enqueued:
        """Insert one job. Given the app's own connection, the job exists only if the app's transaction commits."""
        params = row_params(spec, self.pickles)
        params["state"] = "queued"
        params["depends_on"] = list(spec.depends_on)
        params["allow_failure"] = spec.allow_failure
        with self.db.connection(conn) as c:
            if spec.depends_on:
                with _atomic(c):
                    parents = self.db.fetch_all("lock_parents", {"ids": list(spec.depends_on)}, conn=c)
                    ended = ("finished", "failed", "canceled") if spec.allow_failure else ("finished",)
                    if any(state not in ended for _, state in parents):
                        params["state"] = "deferred"
                    inserted = self.db.fetch_one("insert_job", params, conn=c)
            else:
                inserted = self.db.fetch_one("insert_job", params, conn=c)
        # The primary key decides between racing enqueues of one id: exactly one of them inserts a row.
        if spec.unique and inserted is None:
            raise DuplicateJob(f"Job {params['id']} already exists")
        return Enqueued(self.name, params["id"], spec.queue, spec.job_name)

    def enqueue_many(self, specs: Iterable[JobSpec | Any], conn: psycopg.Connection[Any] | None = None,
                     queue: str = "default", checked: bool = False) -> list[Enqueued]:
        """Insert many jobs in one round trip; ids that already exist are skipped, as with enqueue.
        Accepts JobSpecs or `rq.Queue.prepare_data(...)` items (enqueued on `queue`). `checked`: inside `conn`'s
        transaction the caller found none of the ids in the table; one inserted since raises UniqueViolation."""
        specs = [s if isinstance(s, JobSpec) else from_enqueue_data(s, queue) for s in specs]
        if any(s.depends_on or s.unique for s in specs):
            return [self.enqueue(s, conn) for s in specs]
        if self.pickles and any(self.pickles.covers(s.job_name) for s in specs):
            return self._enqueue_each(specs, conn)
        if not specs:
            return []
        # One COPY in one transaction (bulk.py): either every job is enqueued, durably once this returns, or none.
        with self.db.connection(conn) as c, _atomic(c):
            ids = bulk.write(self.db, c, specs, checked)
        return [Enqueued(self.name, job_id, s.queue, s.job_name) for job_id, s in zip(ids, specs)]

    def _enqueue_each(self, specs: list[JobSpec], conn: psycopg.Connection[Any] | None) -> list[Enqueued]:
        """A batch holding an opted-in job (pickle_payloads), whose arguments may go pickled: row by row, in one
        transaction (the staging table of the COPY carries JSON only)."""
        with self.db.connection(conn) as c, _atomic(c):
            return [self.enqueue(s, c) for s in specs]

    def refusal(self, spec: JobSpec) -> str | None:
        """Why this backend cannot carry the job (an RQ option it cannot honour, a value tagged JSON cannot
        encode, named by its argument path, unless the job is opted in to pickled payloads); None when it can."""
        try:
            row_params(spec, self.pickles)
        except JobRefused as exc:
            return str(exc)
        return None

    # -- inspection ------------------------------------------------------------------------------------------
    def counts(self, queue: str | None = None, job_name: str | None = None, by_job: bool = True) -> list[StateCount]:
        """Per queue, job name and state, always (one GROUP BY): `by_job` is accepted for the protocol."""
        rows = self.db.fetch_all("count_states", {"queue": queue, "func": job_name})
        return [StateCount(q, f, JobState(s), int(n)) for q, f, s, n in rows]

    def iter_pending(self, queue: str | None = None, job_name: str | None = None) -> Iterator[PendingJob]:
        """Every job not yet done, decoded without running it; a server-side cursor keeps memory flat."""
        with self.db.connection() as conn, conn.transaction():
            with conn.cursor(name="migrator_pending") as cur:
                cur.itersize = 2000
                cur.execute(self.db.queries["pending_jobs"], {"queue": queue, "func": job_name})
                for row in cur:
                    yield _pending(row)

    def pickled_counts(self) -> dict[str, int]:
        """Not-yet-done jobs whose arguments travel pickled, per job name (status)."""
        return {func: int(n) for func, n in self.db.fetch_all("count_pickled", {})}

    def fetch_job(self, job_id: str) -> JobInfo | None:
        row = self.db.fetch_one("fetch_job", {"id": job_id})
        if row is None:
            return None
        (jid, queue, job_name, state, attempts, result, etype, emsg, tb, enq, started, finished, run_at, worker,
         *enqueued_with) = row
        return JobInfo(self.name, jid, job_name, queue, _state(state, run_at, attempts), attempts,
                       payload.decode_value(result), etype, emsg, tb, enq, started, finished, worker,
                       _spec(jid, queue, job_name, run_at, enq, *enqueued_with), run_at)

    def native_job(self, job_id: str) -> None:
        """None: this backend has no job object of its own (migrator's job handle reads fetch_job)."""
        return None

    def save_meta(self, job_id: str, meta: Mapping[str, Any]) -> bool:
        encoded = payload.encode_json(dict(meta), "meta")
        return self.db.fetch_one("save_meta", {"id": job_id, "meta": encoded}) is not None

    def cancel_job(self, job_id: str) -> bool:
        """Cancel a queued, scheduled or deferred job; a started or ended one is refused (InvalidJobOperation)."""
        row = self.db.fetch_one("cancel_job", {"id": job_id, "default_failure_ttl": DEFAULT_FAILURE_TTL})
        if row is None:
            return False
        if row[0] == "canceled":
            raise InvalidJobOperation(f"Cannot cancel already canceled job: {job_id}")
        if row[0] not in ("queued", "deferred"):
            word = "started" if row[0] == "running" else row[0]
            raise InvalidJobOperation(f"Cannot cancel job {job_id}: it has {word} on the postgres backend "
                                      "(delete it instead)")
        return True

    def delete_job(self, job_id: str) -> bool:
        return self.db.fetch_one("delete_job", {"id": job_id}) is not None

    def queued_job_ids(self, queue: str) -> list[str]:
        return [jid for jid, in self.db.fetch_all("queued_job_ids", {"queue": queue})]

    def queued_count(self, queue: str) -> int:
        row = self.db.fetch_one("queued_count", {"queue": queue})
        return int(row[0]) if row else 0

    def empty_queue(self, queue: str) -> int:
        return len(self.db.fetch_all("empty_queue", {"queue": queue}))

    def retry_failed(self, ids: list[str] | None = None, job_name: str | None = None) -> int:
        return len(self.db.fetch_all("retry_failed", {"ids": ids, "func": job_name}))

    def delete_failed(self, ids: list[str] | None = None, job_name: str | None = None) -> int:
        return len(self.db.fetch_all("delete_failed", {"ids": ids, "func": job_name}))

    def purge_finished(self, older_than_seconds: float) -> int:
        """Delete finished jobs older than the retention (expired results go by themselves)."""
        return self.db.execute("purge_finished_before", {"seconds": older_than_seconds})

    def run_stats(self, since: datetime, job_names: Sequence[str] | None = None) -> RunStats:
        """Jobs (of `job_names`, or all) started, finished or failed since `since`, and their p95 wait to start."""
        row = self.db.fetch_one("run_stats", {"since": since, "funcs": list(job_names) if job_names is not None
                                              else None})
        started, finished, failed, p95 = row if row else (0, 0, 0, None)
        return RunStats(int(started), int(finished), int(failed), float(p95) if p95 is not None else None)

    def remove_pending(self, job_id: str, conn: psycopg.Connection[Any] | None = None) -> bool:
        """Remove one not-started job (for transfer); False if it started, finished or is gone."""
        return bool(self.db.fetch_all("take_pending", {"id": job_id}, conn=conn))

    def workers(self) -> list[WorkerInfo]:
        """Registered workers, alive or not (alive: its session holds the worker's liveness lock)."""
        return remaining.workers(self.db)

    def inventory(self, job_name: str | None = None, *, queues: Sequence[str] = (), per_job: bool | None = None,
                  watch: Watch | None = None) -> Inventory:
        """What remains, always per job name (one GROUP BY is cheap at any depth); `queues`, `per_job` and
        `watch` are accepted for the protocol (no stray enqueues can reach the new backend around the router)."""
        return remaining.take_inventory(self.db, self.counts(job_name=job_name), job_name)


def _state(state: str, run_at: datetime | None, attempts: int) -> JobState:
    if state == "queued":
        future = run_at is not None and run_at > datetime.now(timezone.utc)
        if attempts > 0:
            return JobState.RETRYING
        return JobState.SCHEDULED if future else JobState.QUEUED
    return LIVE_STATES[state]


def _spec(jid: str, queue: str, job_name: str, run_at: datetime, enqueued_at: datetime, args: Any, kwargs: Any,
          meta: Any, description: str | None, priority: int, timeout_s: int, result_ttl: int | None, ttl: int | None,
          failure_ttl: int | None, retry_max: int, retry_intervals: list[int], depends_on: list[str],
          callbacks: dict[str, Any]) -> JobSpec:
    """What a job was enqueued with, as fetch_job reads it back (a payload this code cannot decode reads empty)."""
    try:
        args, kwargs, meta = payload.decode_value(args), payload.decode_value(kwargs), payload.decode_value(meta)
    except (ValueError, TypeError):
        args, kwargs, meta = [], {}, {}
    return JobSpec(job_name=job_name, args=tuple(args), kwargs=kwargs, queue=queue, job_id=jid, timeout=timeout_s,
                   result_ttl=result_ttl, ttl=ttl, failure_ttl=failure_ttl,
                   retry=RetryPolicy(retry_max, tuple(retry_intervals)) if retry_max else None, meta=meta,
                   description=description, priority=priority, at_front=run_at == EPOCH,
                   run_at=None if run_at == EPOCH or run_at <= enqueued_at else run_at, depends_on=tuple(depends_on),
                   **callback_fields(callbacks))


def _pending(row: tuple[Any, ...]) -> PendingJob:
    (jid, queue, job_name, args, kwargs, meta, description, priority, state, run_at, enqueued_at, timeout_s,
     result_ttl, ttl, failure_ttl, retry_max, retry_intervals, depends_on, attempts, callbacks, allow_failure,
     is_pickled) = row
    error = None
    try:
        args, kwargs, meta = payload.decode_value(args), payload.decode_value(kwargs), payload.decode_value(meta)
    except (ValueError, TypeError) as exc:
        error, args, kwargs, meta = f"payload cannot be decoded: {exc}", [], {}, {}
    retry = RetryPolicy(retry_max, tuple(retry_intervals)) if retry_max else None
    spec = JobSpec(job_name=job_name, args=tuple(args), kwargs=kwargs, queue=queue, job_id=jid, timeout=timeout_s,
                   result_ttl=result_ttl, ttl=ttl, failure_ttl=failure_ttl, retry=retry, meta=meta,
                   description=description, run_at=None if run_at == EPOCH or run_at <= enqueued_at else run_at,
                   priority=priority,
                   at_front=run_at == EPOCH, depends_on=tuple(depends_on), allow_failure=bool(allow_failure),
                   **callback_fields(callbacks))
    return PendingJob(spec, _state(state, run_at, attempts), enqueued_at, error, bool(is_pickled))

