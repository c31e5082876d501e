"""Drain check: prove a backend, or one job name in it, empty: the verdict from sizes, the per-job breakdown from
reads when affordable, and the warnings that say why it may never drain by itself."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from adapters.base import NEEDS_WORKER, BackendName, JobBackend, Place, Remaining, WorkerInfo
from migrator.drain.strays import RoutedSince, find_strays, group_routed_back, split_arrivals
from migrator.drain.values import DrainReport, DrainWarning, SideReport

DEFAULT_BOUND = timedelta(seconds=2)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def check_drain(legacy: JobBackend | None, new: JobBackend | None, job_name: str | None = None, *,
                queues: Sequence[str] = (), per_job: bool | None = None, routed_since: RoutedSince | None = None,
                bound: timedelta = DEFAULT_BOUND, now: Callable[[], datetime] = _utcnow) -> DrainReport:
    """What remains of `job_name` (or of every job) on the backends given. `per_job` None: broken down per job
    name when the backend finds that affordable (always for one job name). `routed_since(job)` says since when a
    job name routes to the new backend; legacy arrivals later than that plus `bound` are stray enqueues."""
    checked_at = now()
    sides = [_side(b, job_name, queues, per_job, routed_since if b is legacy else None, bound)
             for b in (legacy, new) if b is not None]
    strays_checked = routed_since is not None and any(s.per_job for s in sides if s.backend is BackendName.RQ)
    return DrainReport(job_name, tuple(sides), checked_at, strays_checked)


def _side(backend: JobBackend, job_name: str | None, queues: Sequence[str], per_job: bool | None,
          since: RoutedSince | None, bound: timedelta) -> SideReport:
    watch = (lambda name: since(name) is not None) if since is not None else None
    found = backend.inventory(job_name, queues=queues, per_job=per_job, watch=watch)
    rows = found.rows
    warnings = (_stranded(backend.name, rows, found.workers) + _stale(backend.name, rows)
                + _uncleaned(found.uncleaned) + _no_scheduler(found.unscheduled) + _interrupted(backend.name, rows))
    unexplained, deliberate = split_arrivals(found.arrivals)
    strays = find_strays(unexplained, since, bound) if since is not None and found.per_job else []
    return SideReport(backend.name, rows, found.workers, tuple(warnings), tuple(strays), found.per_job,
                      tuple(group_routed_back(deliberate)))


def _interrupted(backend: BackendName, rows: Sequence[Remaining]) -> list[DrainWarning]:
    held = sum(r.count for r in rows if r.place is Place.IN_TRANSFER)
    if not held:
        return []
    other = "postgres" if backend is BackendName.RQ else "rq"
    return [DrainWarning("in-transfer", backend, "", f"{held} jobs are held by an interrupted transfer; run "
                         f"`migrator transfer --all --from {backend} --to {other}` to finish moving them")]


def _stranded(backend: BackendName, rows: Sequence[Remaining], views: Sequence[WorkerInfo]) -> list[DrainWarning]:
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


def _uncleaned(uncleaned: Sequence[tuple[str, int]]) -> list[DrainWarning]:
    return [DrainWarning("uncleaned", BackendName.RQ, q, f"queue {q!r}: a dead RQ worker left RQ's maintenance lock "
                         f"behind, so no RQ worker fails or retries its abandoned jobs for another {s}s; "
                         "`migrator transfer --from rq --to postgres` releases the lock (RQ's workers then clean "
                         "the queue at their next maintenance)") for q, s in uncleaned]


def _no_scheduler(unscheduled: Sequence[tuple[str, int]]) -> list[DrainWarning]:
    return [DrainWarning("no-scheduler", BackendName.RQ, q, f"queue {q!r} has {n} scheduled jobs but no "
                         "live RQ worker runs RQ's scheduler: they will never run; start `rq worker "
                         f"--with-scheduler {q}`") for q, n in unscheduled]


def _places(counts: Counter[Place]) -> str:
    return ", ".join(f"{p} {n}" for p, n in sorted(counts.items()))
