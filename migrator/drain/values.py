"""The values of a drain check: what remains where (per backend, queue, job name and place), the workers
seen, warnings and stray enqueues, and the verdict they add up to."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from adapters.base import BackendName

ANY_JOB = "*"  # the job name of a count that was not broken down per job name (sizes only)


class Place(StrEnum):
    """Where a job sits, finer than JobState: a drain report must say *why* a backend is not empty."""

    QUEUED = "queued"
    INTERMEDIATE = "intermediate"  # popped by an RQ worker, not yet registered as started
    SCHEDULED = "scheduled"
    RETRYING = "retrying"  # failed once, waiting (queued or scheduled) for its next attempt
    DEFERRED = "deferred"
    STARTED = "started"
    STALE = "stale"  # in RQ's started registry, but the worker holding it is dead
    FAILED_RETRYABLE = "failed-retryable"  # in the failed registry with retries left
    RQ_SCHEDULER = "rq-scheduler"  # rq-scheduler's own schedule, outside RQ's registries
    IN_TRANSFER = "in-transfer"  # taken out by a transfer that was interrupted: neither backend runs it yet
    FAILED = "failed"
    FINISHED = "finished"
    CANCELED = "canceled"


# Listed for the record, never a reason to wait: nothing will run them again by itself.
DONE_PLACES = frozenset({Place.FAILED, Place.FINISHED, Place.CANCELED})
# Places whose jobs need a live worker of their queue to ever leave.
NEEDS_WORKER = frozenset(Place) - DONE_PLACES - {Place.STARTED, Place.RQ_SCHEDULER, Place.IN_TRANSFER}


@dataclass(frozen=True, slots=True)
class Remaining:
    backend: BackendName
    queue: str
    job_name: str  # ANY_JOB when counted from sizes only
    place: Place
    count: int

    @property
    def pending(self) -> bool:
        return self.place not in DONE_PLACES


@dataclass(frozen=True, slots=True)
class WorkerView:
    backend: BackendName
    name: str
    queues: tuple[str, ...]
    alive: bool
    detail: str  # busy / idle / "process gone" ...
    runs_scheduler: bool | None = None


@dataclass(frozen=True, slots=True)
class DrainWarning:
    kind: str  # no-scheduler | stranded | stale | not-checked
    backend: BackendName
    queue: str | None
    message: str


@dataclass(frozen=True, slots=True)
class Stray:
    """Jobs of a job name routed to the new backend that still arrived in RQ after the flip settled."""

    job_name: str
    count: int
    first_seen: datetime
    last_seen: datetime
    routed_since: datetime


@dataclass(frozen=True, slots=True)
class SideReport:
    """One backend's share of a drain report."""

    backend: BackendName
    rows: tuple[Remaining, ...]
    workers: tuple[WorkerView, ...]
    warnings: tuple[DrainWarning, ...] = ()
    strays: tuple[Stray, ...] = ()
    per_job: bool = True  # False: counted from sizes, job names not read


@dataclass(frozen=True, slots=True)
class DrainReport:
    job_name: str | None
    sides: tuple[SideReport, ...]
    checked_at: datetime
    strays_checked: bool = False

    @property
    def rows(self) -> tuple[Remaining, ...]:
        return tuple(r for s in self.sides for r in s.rows)

    @property
    def pending(self) -> tuple[Remaining, ...]:
        return tuple(r for r in self.rows if r.pending and r.count)

    @property
    def drained(self) -> bool:
        return not self.pending

    @property
    def ok(self) -> bool:
        """The gate: drained, and no process still enqueues flipped jobs into RQ behind the router's back."""
        return self.drained and not self.strays

    @property
    def warnings(self) -> tuple[DrainWarning, ...]:
        return tuple(w for s in self.sides for w in s.warnings)

    @property
    def strays(self) -> tuple[Stray, ...]:
        return tuple(t for s in self.sides for t in s.strays)

    def totals(self) -> dict[BackendName, int]:
        """Pending jobs per backend checked (0 for an empty one)."""
        out = {s.backend: 0 for s in self.sides}
        for r in self.pending:
            out[r.backend] += r.count
        return out

    def by_place(self) -> Counter[tuple[BackendName, Place]]:
        tally: Counter[tuple[BackendName, Place]] = Counter()
        for r in self.pending:
            tally[(r.backend, r.place)] += r.count
        return tally

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "drained": self.drained, "job": self.job_name, "checked_at": self.checked_at.isoformat(),
            "pending": {str(b): n for b, n in self.totals().items()},
            "remaining": [{"backend": str(r.backend), "queue": r.queue, "job": r.job_name, "state": str(r.place),
                           "count": r.count, "pending": r.pending} for r in self.rows],
            "workers": [{"backend": str(w.backend), "name": w.name, "queues": list(w.queues), "alive": w.alive,
                         "detail": w.detail, "runs_scheduler": w.runs_scheduler}
                        for s in self.sides for w in s.workers],
            "warnings": [{"kind": w.kind, "backend": str(w.backend), "queue": w.queue, "message": w.message}
                         for w in self.warnings],
            "strays_checked": self.strays_checked,
            "strays": [{"job": t.job_name, "count": t.count, "first_seen": t.first_seen.isoformat(),
                        "last_seen": t.last_seen.isoformat(), "routed_since": t.routed_since.isoformat()}
                       for t in self.strays],
            "per_job": {str(s.backend): s.per_job for s in self.sides},
        }
