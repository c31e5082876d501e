"""Postgres -> RQ: take not-started jobs out of workers' reach in one statement, land them in RQ in one MULTI with
a marker, then forget both; a re-run lands what a killed run took."""
from __future__ import annotations

from collections.abc import Sequence

from adapters.base import JobBackend, JobSpec, JobState, PendingJob
from adapters.pg_backend import transfer as pg_side
from adapters.pg_backend.backend import PostgresBackend
from adapters.rq_backend import RQBackend
from adapters.rq_backend import transfer as rq_side
from migrator.transfer.values import TO_RQ_CHUNK, Progress, Refusal, Tally, chunks, recover


def move(legacy: RQBackend, new: PostgresBackend, tally: Tally, job_name: str | None, dry_run: bool,
           progress: Progress, chunk: int | None = None) -> None:
    recover(tally, dry_run, pg_side.held(new), lambda held: _settle_to_rq(legacy, new, held, tally),
             lambda: rq_side.sweep_landed(legacy, [s.job_id or "" for s in pg_side.held(new)]))
    pending = [j for j in new.iter_pending(job_name=job_name) if j.state is not JobState.STARTED]
    progress(0, len(pending))
    size = chunk or TO_RQ_CHUNK
    for i, page in enumerate(chunks(pending, size)):
        _move_to_rq(legacy, new, page, tally, dry_run)  # type: ignore[arg-type]
        progress(min((i + 1) * size, len(pending)), len(pending))


def _move_to_rq(legacy: RQBackend, new: PostgresBackend, page: Sequence[PendingJob], tally: Tally,
                dry_run: bool) -> None:
    waited_on = pg_side.parents_with_dependents(new, [j.spec.job_id or "" for j in page])
    movable: list[str] = []
    for job in page:
        tally.sort(job, _refusal_for_rq(legacy, job, waited_on), dry_run, movable)
    if movable:
        taken = pg_side.take(new, movable)
        tally.missed += len(movable) - len(taken)
        _settle_to_rq(legacy, new, taken, tally)


def _refusal_for_rq(legacy: JobBackend, job: PendingJob, waited_on: set[str]) -> str | None:
    """Why RQ cannot take this job now (None: it can): what only Postgres can wait on, or what RQ cannot carry."""
    if job.error:
        return job.error
    if job.state is JobState.RETRYING:
        return "it has run on postgres and waits for a retry: let it finish there"
    if job.state is JobState.DEFERRED or job.spec.depends_on:
        return "it waits on jobs in postgres (depends_on), which rq cannot wait on: let it run on postgres"
    if job.spec.job_id in waited_on:
        return "other jobs in postgres wait on it (depends_on): let it run on postgres"
    return legacy.refusal(job.spec)


def _settle_to_rq(legacy: RQBackend, new: PostgresBackend, taken: Sequence[JobSpec], tally: Tally) -> int:
    """Land taken jobs in RQ, give back to Postgres those whose id RQ already uses. Returns jobs moved."""
    if not taken:
        return 0
    done, conflicts = rq_side.land(legacy, taken)
    for spec in taken:
        if spec.job_id in conflicts:
            tally.refused.append(Refusal(spec.job_id or "", spec.job_name, _state_of(spec),
                                         "rq already has a different job with this id"))
    pg_side.restore_held(new, sorted(conflicts))
    ids = [s.job_id or "" for s in taken if s.job_id in done]
    pg_side.forget_held(new, ids)
    rq_side.forget_landed(legacy, ids)
    tally.moved.update((s.job_name, _state_of(s)) for s in taken if s.job_id in done)
    return len(ids)


def _state_of(spec: JobSpec) -> JobState:
    return JobState.SCHEDULED if spec.run_at is not None else JobState.QUEUED
