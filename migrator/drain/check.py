"""Drain check: prove a backend, or one job name in it, empty: the verdict from sizes, the per-job breakdown from
reads when affordable, and the warnings that say why it may never drain by itself."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from adapters.base import BackendName
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend import transfer as pg_transfer
from adapters.rq_backend import RQBackend
from adapters.rq_backend import transfer as rq_transfer
from adapters.rq_backend.connection import reachable
from migrator.drain import pg_side as drain_pg, rq_side as drain_rq
from migrator.drain.values import (NEEDS_WORKER, DrainReport, DrainWarning, Place, Remaining, SideReport,
                                   WorkerView)
from migrator.drain.strays import RoutedSince, find_strays


# Pending RQ jobs up to which the report is broken down per job name: reading 100,000 jobs takes a few
# seconds; above this the verdict comes from sizes alone and stays under a second at any depth.
BREAKDOWN_LIMIT = 200_000
DEFAULT_BOUND = timedelta(seconds=2)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def check_drain(legacy: RQBackend | None, new: PostgresBackend | None, job: str | None = None, *,
                queues: Sequence[str] = (), per_job: bool | None = None, routed_since: RoutedSince | None = None,
                bound: timedelta = DEFAULT_BOUND, now: Callable[[], datetime] = _utcnow) -> DrainReport:
    """What remains of `job` (or of every job) on the backends given. `per_job` None: broken down per job
    name when at most BREAKDOWN_LIMIT jobs wait in RQ (always for `job`). `routed_since(job)` says since when
    a job name routes to the new backend; RQ arrivals later than that plus `bound` are stray enqueues."""
    checked_at = now()
    sides: list[SideReport] = []
    if legacy is not None:
        sides.append(_rq_side(legacy, job, queues, per_job, routed_since, bound, checked_at))
    if new is not None:
        sides.append(_pg_side(new, job))
    strays_checked = routed_since is not None and any(s.per_job for s in sides if s.backend is BackendName.RQ)
    return DrainReport(job, tuple(sides), checked_at, strays_checked)


def _rq_side(backend: RQBackend, job: str | None, queues: Sequence[str], per_job: bool | None,
             since: RoutedSince | None, bound: timedelta, now: datetime) -> SideReport:
    names = sorted(set(backend.queues()) | set(queues))
    views = drain_rq.worker_views(backend.workers(), now)
    with reachable(backend.url):
        if job is not None:
            per_job = True
        elif per_job is None:
            per_job = drain_rq.pending_size(backend, names) <= BREAKDOWN_LIMIT
        tally = drain_rq.Tally(per_job, job, frozenset(v.name for v in views if v.alive), since)
        drain_rq.count_rq(backend, names, tally)
        waiting = sorted(q for q, n in tally.scheduled.items() if n)
        gaps = drain_rq.scheduler_gaps(backend, waiting) if waiting else []
    held = [(j.spec.queue, j.spec.job_name) for j in rq_transfer.held(backend)]
    rows = tally.rows() + _in_transfer(BackendName.RQ, held, job)
    warnings = (_stranded(BackendName.RQ, rows, views) + _stale(BackendName.RQ, rows) + _no_scheduler(gaps, tally.scheduled)
                + _interrupted(BackendName.RQ, rows))
    strays = find_strays(tally.arrivals, since, bound) if since is not None and per_job else []
    return SideReport(BackendName.RQ, tuple(rows), tuple(views), tuple(warnings), tuple(strays), per_job)


def _pg_side(backend: PostgresBackend, job: str | None) -> SideReport:
    held = [(s.queue, s.job_name) for s in pg_transfer.held(backend)]
    rows = drain_pg.remaining_pg(backend, job) + _in_transfer(BackendName.POSTGRES, held, job)
    views = drain_pg.worker_views(backend)
    warnings = (_stranded(BackendName.POSTGRES, rows, views) + _interrupted(BackendName.POSTGRES, rows)
                + _stale(BackendName.POSTGRES, rows))
    return SideReport(BackendName.POSTGRES, tuple(rows), tuple(views), tuple(warnings))


def _in_transfer(backend: BackendName, held: Sequence[tuple[str, str]], job: str | None) -> list[Remaining]:
    """Jobs an interrupted transfer took out of `backend` and has not landed: pending until a transfer finishes."""
    counts = Counter((queue, job_name) for queue, job_name in held if job is None or job_name == job)
    return [Remaining(backend, q, f, Place.IN_TRANSFER, n) for (q, f), n in sorted(counts.items())]


def _interrupted(backend: BackendName, rows: Sequence[Remaining]) -> list[DrainWarning]:
    held = sum(r.count for r in rows if r.place is Place.IN_TRANSFER)
    if not held:
        return []
    other = "postgres" if backend is BackendName.RQ else "rq"
    return [DrainWarning("in-transfer", backend, "", f"{held} jobs are held by an interrupted transfer; run "
                         f"`migrator transfer --all --from {backend} --to {other}` to finish moving them")]


def _stranded(backend: BackendName, rows: Sequence[Remaining], views: Sequence[WorkerView]) -> list[DrainWarning]:
    """Queues holding jobs that need a worker while no live worker of that backend serves them."""
    served = {q for v in views if v.alive for q in v.queues}
    waiting: dict[str, Counter[Place]] = {}
    for r in rows:
        if r.place in NEEDS_WORKER and r.count and r.queue and r.queue not in served:
            waiting.setdefault(r.queue, Counter())[r.place] += r.count
    start = "rq worker" if backend is BackendName.RQ else "migrator worker --queues"
    return [DrainWarning("stranded", backend, q, f"queue {q!r} holds {sum(c.values())} jobs ({_places(c)}) but no "
                         f"live {backend} worker serves it; start `{start} {q}`")
            for q, c in sorted(waiting.items())]


# What happens to a stale started job, per backend: the sentence after "N started jobs of queue Q belong to ...".
_STALE_FATE = {
    BackendName.RQ: "dead RQ workers; RQ fails or retries them once their timeout passes (`rq requeue` after that)",
    BackendName.POSTGRES: "dead migrator workers; a live worker requeues them within its recovery grace "
                          "(start one if none runs)",
}


def _stale(backend: BackendName, rows: Sequence[Remaining]) -> list[DrainWarning]:
    stale: Counter[str] = Counter()
    for r in rows:
        if r.place is Place.STALE:
            stale[r.queue] += r.count
    return [DrainWarning("stale", backend, q, f"{n} started jobs of queue {q!r} belong to {_STALE_FATE[backend]}")
            for q, n in sorted(stale.items())]


def _no_scheduler(gaps: Sequence[str], scheduled: Counter[str]) -> list[DrainWarning]:
    return [DrainWarning("no-scheduler", BackendName.RQ, q, f"queue {q!r} has {scheduled[q]} scheduled jobs but no "
                         "live RQ worker runs RQ's scheduler: they will never run; start `rq worker "
                         f"--with-scheduler {q}`") for q in gaps]


def _places(counts: Counter[Place]) -> str:
    return ", ".join(f"{p} {n}" for p, n in sorted(counts.items()))
