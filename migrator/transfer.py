"""Transfer: move not-yet-started jobs from one backend to the other, exactly once, even when killed midway.

RQ -> Postgres, per chunk of ids (crash points in docs/transfer.md):
  1. claim (one Lua script): the ids leave RQ's queue list / scheduled / deferred registry and enter our
     holding hash atomically. A worker that popped a job first keeps it; one we claimed no worker can pop.
  2. land (one Postgres transaction): a marker per id in migrator_transfers, and the jobs under their own ids.
     An id whose marker exists was landed by a killed run: it is not inserted again, even if it already ran.
  3. finish (one MULTI): delete the RQ job hashes and the holding entries.  4. forget the markers.
  A re-run first settles whatever the holding hash still holds (steps 2-4), then sweeps stale markers.
Postgres -> RQ is the mirror: take (rows move into migrator_transfers in one statement: no worker can claim
them), land (one MULTI: RQ enqueue plus a marker in a Redis set, skipped for marked ids), forget both.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from adapters.base import BackendName, JobRefused, JobSpec, JobState, PendingJob
from adapters.pg_backend import transfer as pg_side
from adapters.pg_backend.backend import PostgresBackend, row_params
from adapters.rq_backend import RQBackend
from adapters.rq_backend import decode
from adapters.rq_backend import enqueue as rq_options
from adapters.rq_backend import transfer as rq_side

CHUNK = 1000  # ids per claim: one Lua call (Redis blocks a few ms) and one insert transaction per chunk
Progress = Callable[[int, int], None]  # (jobs looked at, jobs to look at)


class Direction(StrEnum):
    TO_POSTGRES = "rq->postgres"
    TO_RQ = "postgres->rq"

    @classmethod
    def between(cls, source: BackendName, target: BackendName) -> "Direction":
        return cls.TO_POSTGRES if (source, target) == (BackendName.RQ, BackendName.POSTGRES) else cls.TO_RQ


@dataclass(frozen=True, slots=True)
class Refusal:
    """A job that stays where it is, and why."""

    job_id: str
    func: str
    state: JobState
    reason: str


@dataclass(frozen=True, slots=True)
class Moved:
    func: str
    state: JobState
    count: int


@dataclass(frozen=True, slots=True)
class TransferReport:
    direction: Direction
    dry_run: bool
    moved: tuple[Moved, ...]  # would move, on a dry run
    refused: tuple[Refusal, ...]
    recovered: int  # jobs an interrupted run had taken, moved now (on a dry run: still held)
    missed: int  # taken by a worker (or changed) between listing and claiming: they ran where they were
    waiting: int  # scheduled jobs due too soon to claim safely: RQ's scheduler enqueues them, re-run then

    @property
    def total_moved(self) -> int:
        return sum(m.count for m in self.moved)


@dataclass
class _Tally:
    """What one run did so far (mutable while running; frozen into a TransferReport at the end)."""

    moved: Counter[tuple[str, JobState]] = field(default_factory=Counter)
    refused: list[Refusal] = field(default_factory=list)
    recovered: int = 0
    missed: int = 0
    waiting: int = 0

    def refuse(self, job: PendingJob, reason: str) -> None:
        self.refused.append(Refusal(job.spec.job_id or "", job.spec.func, job.state, reason))

    def sort(self, job: PendingJob, reason: str | None, dry_run: bool, movable: list[str]) -> None:
        """Refused, counted (dry run) or added to the ids to move."""
        if reason:
            self.refuse(job, reason)
        elif dry_run:
            self.moved[(job.spec.func, job.state)] += 1
        else:
            movable.append(job.spec.job_id or "")

    def report(self, direction: Direction, dry_run: bool) -> TransferReport:
        moved = tuple(Moved(f, s, n) for (f, s), n in sorted(self.moved.items()))
        return TransferReport(direction, dry_run, moved, tuple(self.refused), self.recovered, self.missed,
                              self.waiting)


def transfer_pending(legacy: RQBackend, new: PostgresBackend, direction: Direction, func: str | None = None,
                     dry_run: bool = False, progress: Progress | None = None) -> TransferReport:
    """Move every not-started job (of job name `func`, or all) in `direction`; finish an interrupted run first."""
    tally = _Tally()
    step = _to_postgres if direction is Direction.TO_POSTGRES else _to_rq
    if dry_run:  # reads only: no lock, nothing held, nothing moved
        step(legacy, new, tally, func, True, progress or _quiet)
    else:
        with pg_side.transfer_lock(new):
            step(legacy, new, tally, func, False, progress or _quiet)
    return tally.report(direction, dry_run)


def _quiet(done: int, total: int) -> None:
    return None


def chunks(items: Sequence[object], size: int = CHUNK) -> Iterable[Sequence[object]]:
    return (items[i:i + size] for i in range(0, len(items), size))


def _recover(tally: _Tally, dry_run: bool, held: Sequence[Any], settle: Callable[[Any], int],
             sweep: Callable[[], None]) -> None:
    """Settle what an interrupted run left in transit, then drop markers nothing refers to any more (in this
    order: settling needs the markers)."""
    if dry_run:
        tally.recovered = len(held)
        return
    tally.recovered = settle(held)
    sweep()


# -- RQ -> Postgres ----------------------------------------------------------------------------------------------
def _to_postgres(legacy: RQBackend, new: PostgresBackend, tally: _Tally, func: str | None, dry_run: bool,
                 progress: Progress) -> None:
    _recover(tally, dry_run, rq_side.held(legacy), lambda held: _settle_from_rq(legacy, new, held, tally),
             lambda: pg_side.sweep_landed(new, rq_side.held_ids(legacy)))
    sources = [s for q in legacy.queues() for s in rq_side.sources(legacy, q)]
    sources.sort(key=lambda s: s.state is JobState.DEFERRED)  # parents move before their dependents
    snapshots = [(s, rq_side.snapshot(legacy, s)) for s in sources]
    total, done = sum(len(ids) for _, ids in snapshots), 0
    progress(0, total)
    for source, ids in snapshots:
        for page in chunks(ids):
            _move_from_rq(legacy, new, source, page, tally, func, dry_run)  # type: ignore[arg-type]
            done += len(page)
            progress(done, total)


def _move_from_rq(legacy: RQBackend, new: PostgresBackend, source: rq_side.Source,
                  page: Sequence[tuple[str, float | None]], tally: _Tally, func: str | None, dry_run: bool) -> None:
    if func is None and not dry_run:  # nothing to choose: claim at once, decide on what we hold (one read)
        _claim_and_settle(legacy, new, source, [job_id for job_id, _ in page], tally, len(page))
        return
    jobs = [(j, deps) for j, deps in rq_side.read(legacy, source, page) if func is None or j.spec.func == func]
    parents = {p for j, _ in jobs for p in j.spec.depends_on}
    in_postgres = pg_side.existing_ids(new, sorted(parents))
    movable: list[str] = []
    for job, has_dependents in jobs:
        reason = _refusal_for_postgres(job, has_dependents, in_postgres)
        if job.error == decode.GONE:  # a worker ran it (and its hash went) after the snapshot
            tally.missed += 1
        elif reason == _DUE:
            tally.waiting += 1
        else:
            tally.sort(job, reason, dry_run, movable)
    if movable:
        _claim_and_settle(legacy, new, source, movable, tally, len(movable))


def _claim_and_settle(legacy: RQBackend, new: PostgresBackend, source: rq_side.Source, ids: list[str],
                      tally: _Tally, asked: int) -> None:
    claimed = rq_side.claim(legacy, source, ids)
    for job in claimed.waited_on:
        tally.refuse(job, _WAITED_ON)
    tally.waiting += claimed.due
    tally.missed += asked - len(claimed.held) - len(claimed.waited_on) - claimed.due
    _settle_from_rq(legacy, new, claimed.held, tally)


_DUE = "due"
_WAITED_ON = "other jobs in rq wait on it (depends_on): let it run on rq"


def _refusal_for_postgres(job: PendingJob, has_dependents: bool, in_postgres: set[str]) -> str | None:
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
    try:
        row_params(job.spec)
    except JobRefused as exc:
        return str(exc)
    return None


def _settle_from_rq(legacy: RQBackend, new: PostgresBackend, claimed: Sequence[PendingJob], tally: _Tally) -> int:
    """Steps 2-4 for jobs in our holding hash; gives back to RQ what Postgres cannot take. Returns jobs moved."""
    gone = [j.spec.job_id or "" for j in claimed if j.error == decode.GONE]
    rq_side.finish(legacy, gone)  # expired (ttl) while held: RQ would have dropped them too
    keep, back = [], []
    in_postgres = pg_side.existing_ids(new, sorted({p for j in claimed for p in j.spec.depends_on}))
    for job in claimed:
        if job.error == decode.GONE:
            continue
        reason = _refusal_for_postgres(job, False, in_postgres)
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
    tally.moved.update((j.spec.func, j.state) for j in keep if j.spec.job_id in done)
    return len(ids)


def _for_postgres(job: PendingJob) -> JobSpec:
    """A queued job keeps its place in line: it runs after jobs enqueued before it, wherever they are."""
    spec = job.spec
    if spec.run_at is None and not spec.depends_on and job.enqueued_at is not None:
        return replace(spec, run_at=job.enqueued_at)
    return spec


# -- Postgres -> RQ ----------------------------------------------------------------------------------------------
def _to_rq(legacy: RQBackend, new: PostgresBackend, tally: _Tally, func: str | None, dry_run: bool,
           progress: Progress) -> None:
    _recover(tally, dry_run, pg_side.held(new), lambda held: _settle_to_rq(legacy, new, held, tally),
             lambda: rq_side.sweep_landed(legacy, [s.job_id or "" for s in pg_side.held(new)]))
    pending = [j for j in new.iter_pending(func=func) if j.state is not JobState.STARTED]
    progress(0, len(pending))
    for i, page in enumerate(chunks(pending)):
        _move_to_rq(legacy, new, page, tally, dry_run)  # type: ignore[arg-type]
        progress(min((i + 1) * CHUNK, len(pending)), len(pending))


def _move_to_rq(legacy: RQBackend, new: PostgresBackend, page: Sequence[PendingJob], tally: _Tally,
                dry_run: bool) -> None:
    waited_on = pg_side.parents_with_dependents(new, [j.spec.job_id or "" for j in page])
    movable: list[str] = []
    for job in page:
        tally.sort(job, _refusal_for_rq(legacy, job, waited_on), dry_run, movable)
    if movable:
        taken = pg_side.take(new, movable)
        tally.missed += len(movable) - len(taken)
        _settle_to_rq(legacy, new, taken, tally)


def _refusal_for_rq(legacy: RQBackend, job: PendingJob, waited_on: set[str]) -> str | None:
    if job.error:
        return job.error
    if job.state is JobState.RETRYING:
        return "it has run on postgres and waits for a retry: let it finish there"
    if job.state is JobState.DEFERRED or job.spec.depends_on:
        return "it waits on jobs in postgres (depends_on), which rq cannot wait on: let it run on postgres"
    if job.spec.job_id in waited_on:
        return "other jobs in postgres wait on it (depends_on): let it run on postgres"
    try:
        rq_options.refuse_unsupported(job.spec)
        legacy.serializer.dumps((job.spec.func, None, job.spec.args, dict(job.spec.kwargs)))
    except JobRefused as exc:
        return str(exc)
    except Exception as exc:  # the app's serializer may raise anything: it is the reason
        return f"rq's serializer refuses the payload: {type(exc).__name__}: {exc}"
    return None


def _settle_to_rq(legacy: RQBackend, new: PostgresBackend, taken: Sequence[JobSpec], tally: _Tally) -> int:
    """Land taken jobs in RQ, give back to Postgres those whose id RQ already uses. Returns jobs moved."""
    if not taken:
        return 0
    done, conflicts = rq_side.land(legacy, taken)
    for spec in taken:
        if spec.job_id in conflicts:
            tally.refused.append(Refusal(spec.job_id or "", spec.func, _state_of(spec),
                                         "rq already has a different job with this id"))
    pg_side.restore_held(new, sorted(conflicts))
    ids = [s.job_id or "" for s in taken if s.job_id in done]
    pg_side.forget_held(new, ids)
    rq_side.forget_landed(legacy, ids)
    tally.moved.update((s.func, _state_of(s)) for s in taken if s.job_id in done)
    return len(ids)


def _state_of(spec: JobSpec) -> JobState:
    return JobState.SCHEDULED if spec.run_at is not None else JobState.QUEUED
