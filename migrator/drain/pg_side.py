"""The new backend's side of a drain check: one GROUP BY over the jobs table (always per job name) and the
workers whose liveness lock is held."""
from __future__ import annotations

from adapters.base import BackendName, JobState
from adapters.pg_backend.backend import PostgresBackend
from migrator.drain.values import Place, Remaining, WorkerView

PG = BackendName.POSTGRES
PLACES = {JobState.QUEUED: Place.QUEUED, JobState.SCHEDULED: Place.SCHEDULED, JobState.RETRYING: Place.RETRYING,
          JobState.DEFERRED: Place.DEFERRED, JobState.STARTED: Place.STARTED, JobState.FAILED: Place.FAILED,
          JobState.FINISHED: Place.FINISHED, JobState.CANCELED: Place.CANCELED}


def remaining_pg(backend: PostgresBackend, job: str | None) -> list[Remaining]:
    """Started jobs are split: held by a live worker, or stale (its worker died; a live worker's reaper requeues
    it within recovery_grace_seconds)."""
    rows = [Remaining(PG, c.queue, c.job_name, PLACES[c.state], c.count) for c in backend.counts(job_name=job)
            if c.count and c.state is not JobState.STARTED]
    rows += [Remaining(PG, q, f, Place.STARTED if alive else Place.STALE, n)
             for q, f, alive, n in backend.running_by_liveness(job) if n]
    return rows


def worker_views(backend: PostgresBackend) -> list[WorkerView]:
    """Live workers only: alive = its session still holds the worker's advisory lock, which a dead process
    cannot; rows of dead workers are history, not workers."""
    return [WorkerView(PG, f"{w['hostname']}:{w['pid']}#{w['id']}", tuple(w["queues"] or ()), True,
                       f"pid {w['pid']} on {w['hostname']}")
            for w in backend.list_workers() if w["alive"]]
