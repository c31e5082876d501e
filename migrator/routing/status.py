"""What `status` reports: every known job, where it routes and why, the queue depths on both backends, and the
live routers with the routing version each applies."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.base import PENDING_STATES, BackendError, BackendName, PickleOptIn, StateCount
from migrator.routing import decide as router
from migrator.errors import MigratorError
from migrator.routing.presence import RouterPresence, lagging
from migrator.routing.snapshot import RoutingSnapshot

Counter = Callable[[], list[StateCount]]  # one backend's counts per queue, job name and state


@dataclass(frozen=True, slots=True)
class Depths:
    """One backend's counts, or why they could not be read (status still reports the routing)."""

    backend: BackendName
    counts: tuple[StateCount, ...] = ()
    error: str | None = None

    def pending(self, job: str | None = None) -> int:
        return sum(c.count for c in self.counts if c.state in PENDING_STATES and (job is None or c.job_name == job))

    def by_queue(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for c in self.counts:
            states = out.setdefault(c.queue, {})
            states[str(c.state)] = states.get(str(c.state), 0) + c.count
        return out


@dataclass(frozen=True, slots=True)
class PickledPayloads:
    """Opt-in pickled payloads: the jobs this configuration opts in (pickle_payloads), and the jobs waiting on the
    new backend whose arguments are pickled, per job name (None, with the error, when they could not be counted)."""

    opted_in: PickleOptIn = PickleOptIn()
    pending: Mapping[str, int] | None = None
    error: str | None = None

    @property
    def unexpected(self) -> list[str]:
        """Job names with pickled jobs waiting that this configuration does not opt in: its workers refuse them."""
        return sorted(name for name in self.pending or {} if not self.opted_in.covers(name))

    def shown(self) -> bool:
        return bool(self.opted_in) or bool(self.pending) or self.error is not None

    def to_json(self) -> dict[str, Any]:
        return {"opted_in": self.opted_in.to_json(), "pending": dict(self.pending or {}), "error": self.error,
                "not_opted_in": self.unexpected}

    def line(self) -> str:
        text = f"pickled payloads (pickle_payloads): opted in for {self.opted_in.describe()}"
        if self.error is not None:
            return f"{text}; pending pickled jobs unknown: {self.error}"
        pending = self.pending or {}
        text += f"; {sum(pending.values())} pending pickled" + "".join(f", {n} {name}" for name, n in pending.items())
        if self.unexpected:
            text += f"; not opted in here, so refused by workers configured so: {', '.join(self.unexpected)}"
        return text


def read_pickled(opted_in: PickleOptIn, counter: Callable[[], Mapping[str, int]]) -> PickledPayloads:
    try:
        return PickledPayloads(opted_in, dict(counter()))
    except (BackendError, MigratorError) as exc:
        return PickledPayloads(opted_in, error=str(exc))


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One known job name: where it routes, why, its rollout bucket and its pending jobs per backend."""

    job_name: str
    route: router.Route
    bucket: int
    pending: dict[str, int] = field(default_factory=dict)  # backend name -> pending jobs of this name


@dataclass(frozen=True, slots=True)
class StatusReport:
    """What `migrator status` shows: the routing, every known job and both backends' depths."""

    snapshot: RoutingSnapshot
    known: bool  # False when the flag store could not be read: routing shown is the legacy default
    jobs: tuple[JobStatus, ...]
    depths: tuple[Depths, ...]
    routers: tuple[RouterPresence, ...] = ()  # processes routing jobs now, and the version each applies
    pickles: PickledPayloads = PickledPayloads()

    @property
    def lagging(self) -> list[RouterPresence]:
        """Live routers that have not applied the current routing version yet."""
        return lagging(self.routers, self.snapshot.version)

    def to_json(self) -> dict[str, Any]:
        return {
            "routing": {**self.snapshot.to_json(), "known": self.known},
            "jobs": [{"job": j.job_name, "backend": str(j.route.backend), "reason": j.route.reason, "bucket": j.bucket,
                      "pending": j.pending} for j in self.jobs],
            "queues": {str(d.backend): {"error": d.error, "queues": d.by_queue(), "pending": d.pending()}
                       for d in self.depths},
            "routers": [{**r.to_json(), "lagging": r.version < self.snapshot.version} for r in self.routers],
            "pickle_payloads": self.pickles.to_json(),
        }


def read_depths(backend: BackendName, counter: Counter | None) -> Depths:
    if counter is None:
        return Depths(backend, error="no adapter installed for this backend")
    try:
        return Depths(backend, tuple(counter()))
    except (BackendError, MigratorError) as exc:
        return Depths(backend, error=str(exc))


def build(snapshot: RoutingSnapshot, known_jobs: Iterable[str], counters: Mapping[BackendName, Counter | None],
          known: bool = True, routers: Iterable[RouterPresence] = (),
          pickles: PickledPayloads = PickledPayloads()) -> StatusReport:
    """Every job that is known, flagged, or waiting in a queue, with its route and pending counts."""
    depths = tuple(read_depths(name, counters.get(name)) for name in (BackendName.RQ, BackendName.POSTGRES))
    names = set(known_jobs) | snapshot.flipped | snapshot.pinned
    names |= {c.job_name for d in depths for c in d.counts}
    jobs = tuple(JobStatus(name, router.decide(name, snapshot), router.bucket(name),
                           {str(d.backend): d.pending(name) for d in depths if d.error is None})
                 for name in sorted(names))
    return StatusReport(snapshot, known, jobs, depths, tuple(routers), pickles)
