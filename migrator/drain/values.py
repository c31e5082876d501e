"""The values of a drain check: what remains where (per backend, queue, job name and place), the workers
seen, warnings and stray enqueues, and the verdict they add up to."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.base import ANY_JOB, DONE_PLACES, NEEDS_WORKER, BackendName, Place, Remaining, WorkerInfo

__all__ = ["ANY_JOB", "Place", "Remaining", "WorkerInfo", "DONE_PLACES", "NEEDS_WORKER", "DrainWarning", "Stray",
           "RoutedBack", "SideReport", "DrainReport"]


@dataclass(frozen=True, slots=True)
class DrainWarning:
    """Something that may keep a backend from ever draining by itself, and what to do about it."""

    kind: str  # no-scheduler | stranded | stale | uncleaned | in-transfer
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
class RoutedBack:
    """Jobs of a job name routed to the new backend that the router itself sent to RQ: the new backend was
    unreachable (`fallback`) or could not carry their payload (`refused`). Deliberate, so not strays: they
    count as pending like any job until they have run, and say why that job name is still in RQ."""

    job_name: str
    why: str  # fallback | refused
    count: int
    first_seen: datetime
    last_seen: datetime

    def to_json(self) -> dict[str, Any]:
        return {"job": self.job_name, "why": self.why, "count": self.count,
                "first_seen": self.first_seen.isoformat(), "last_seen": self.last_seen.isoformat()}


@dataclass(frozen=True, slots=True)
class SideReport:
    """One backend's share of a drain report."""

    backend: BackendName
    rows: tuple[Remaining, ...]
    workers: tuple[WorkerInfo, ...]
    warnings: tuple[DrainWarning, ...] = ()
    strays: tuple[Stray, ...] = ()
    per_job: bool = True  # False: counted from sizes, job names not read
    routed_back: tuple[RoutedBack, ...] = ()


@dataclass(frozen=True, slots=True)
class DrainReport:
    """A drain check's whole answer: what remains on each backend checked, the verdict, and why."""

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

    @property
    def routed_back(self) -> tuple[RoutedBack, ...]:
        return tuple(t for s in self.sides for t in s.routed_back)

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
            "remaining": [r.to_json() for r in self.rows],
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
            "routed_back": [t.to_json() for t in self.routed_back],
        }
