"""RQ -> Postgres: claim not-started jobs out of RQ in one Lua step per chunk, land them in Postgres with a marker
that outlives the job, then clean up; a re-run settles what a killed run held (docs/transfer.md)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from adapters.base import JobBackend, JobSpec, JobState, PendingJob
from adapters.pg_backend import transfer as pg_side
from adapters.pg_backend.backend import PostgresBackend
from adapters.rq_backend import RQBackend
from adapters.rq_backend import decode
from adapters.rq_backend import transfer as rq_side
from migrator.transfer.values import Progress, Tally, chunks, recover


def move(legacy: RQBackend, new: PostgresBackend, tally: Tally, job_name: str | None, dry_run: bool,
                 progress: Progress) -> None:
    recover(tally, dry_run, rq_side.held(legacy), lambda held: _settle_from_rq(legacy, new, held, tally),
             lambda: pg_side.sweep_landed(new, rq_side.held_ids(legacy)))
    sources = [s for q in legacy.queues() for s in rq_side.sources(legacy, q)]
    sources.sort(key=lambda s: s.state is JobState.DEFERRED)  # parents move before their dependents
    snapshots = [(s, rq_side.snapshot(legacy, s)) for s in sources]
    total, done = sum(len(ids) for _, ids in snapshots), 0
    progress(0, total)
    for source, ids in snapshots:
        for page in chunks(ids):
            _move_from_rq(legacy, new, source, page, tally, job_name, dry_run)  # type: ignore[arg-type]
            done += len(page)
            progress(done, total)


def _move_from_rq(legacy: RQBackend, new: PostgresBackend, source: rq_side.Source,
                  page: Sequence[tuple[str, float | None]], tally: Tally, job_name: str | None, dry_run: bool) -> None:
    if job_name is None and not dry_run:  # nothing to choose: claim at once, decide on what we hold (one read)
        _claim_and_settle(legacy, new, source, [job_id for job_id, _ in page], tally, len(page))
        return
    jobs = [(j, deps) for j, deps in rq_side.read(legacy, source, page) if job_name is None or j.spec.job_name == job_name]
    parents = {p for j, _ in jobs for p in j.spec.depends_on}
    in_postgres = pg_side.existing_ids(new, sorted(parents))
    movable: list[str] = []
    for job, has_dependents in jobs:
        reason = _refusal_for_postgres(new, job, has_dependents, in_postgres)
        if job.error == decode.GONE:  # a worker ran it (and its hash went) after the snapshot
            tally.missed += 1
        elif reason == _DUE:
            tally.waiting += 1
        else:
            tally.sort(job, reason, dry_run, movable)
    if movable:
        _claim_and_settle(legacy, new, source, movable, tally, len(movable))


def _claim_and_settle(legacy: RQBackend, new: PostgresBackend, source: rq_side.Source, ids: list[str],
                      tally: Tally, asked: int) -> None:
    claimed = rq_side.claim(legacy, source, ids)
    for job in claimed.waited_on:
        tally.refuse(job, _WAITED_ON)
    tally.waiting += claimed.due
    tally.missed += asked - len(claimed.held) - len(claimed.waited_on) - claimed.due
    _settle_from_rq(legacy, new, claimed.held, tally)


_DUE = "due"
_WAITED_ON = "other jobs in rq wait on it (depends_on): let it run on rq"


def _refusal_for_postgres(new: JobBackend, job: PendingJob, has_dependents: bool, in_postgres: set[str]) -> str | None:
    """Why Postgres cannot take this job now (None: it can). _DUE: a scheduled job about to be enqueued by RQ."""
    if job.error:
        return job.error
    if has_dependents:
        return _WAITED_ON
    missing = [p for p in job.spec.depends_on if p not in in_postgres]
    if missing:
        return f"it waits on job {missing[0]}, which is still in rq: let it run on rq"
    if job.spec.run_at is not None and job.state is not JobState.DEFERRED:
        if job.spec.run_at <= datetime.now(timezone.utc) + timedelta(seconds=rq_side.SCHEDULER_MARGIN):
            return _DUE
    return new.refusal(job.spec)


def _settle_from_rq(legacy: RQBackend, new: PostgresBackend, claimed: Sequence[PendingJob], tally: Tally) -> int:
    """Steps 2-4 for jobs in our holding hash; gives back to RQ what Postgres cannot take. Returns jobs moved."""
    gone = [j.spec.job_id or "" for j in claimed if j.error == decode.GONE]
    rq_side.finish(legacy, gone)  # expired (ttl) while held: RQ would have dropped them too
    keep, back = [], []
    in_postgres = pg_side.existing_ids(new, sorted({p for j in claimed for p in j.spec.depends_on}))
    for job in claimed:
        if job.error == decode.GONE:
            continue
        reason = _refusal_for_postgres(new, job, False, in_postgres)
        if reason and reason != _DUE:
            tally.refuse(job, reason)
            back.append(job.spec.job_id or "")
        else:
            keep.append(job)
    done, conflicts = pg_side.land(new, [_for_postgres(j) for j in keep]) if keep else (set(), set())
    for job in keep:
        if job.spec.job_id in conflicts:
            tally.refuse(job, "postgres already has a different job with this id")
    rq_side.release(legacy, back + sorted(conflicts))
    ids = [j.spec.job_id or "" for j in keep if j.spec.job_id in done]
    rq_side.finish(legacy, ids)
    pg_side.forget_landed(new, ids)
    tally.moved.update((j.spec.job_name, j.state) for j in keep if j.spec.job_id in done)
    return len(ids)


def _for_postgres(job: PendingJob) -> JobSpec:
    """A queued job keeps its place in line: it runs after jobs enqueued before it, wherever they are."""
    spec = job.spec
    if spec.run_at is None and not spec.depends_on and job.enqueued_at is not None:
        return replace(spec, run_at=job.enqueued_at)
    return spec


