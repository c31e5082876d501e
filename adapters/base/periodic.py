"""Periodic jobs: the schedules the new backend's workers enqueue, each tick once."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from adapters.base.jobs import _iso
from adapters.base.errors import BackendUnavailable, SchemaMissing

__all__ = ["Fire", "NextTick", "PeriodicEntry", "PeriodicStore"]


# -- periodic jobs: schedules the new backend's workers enqueue, each tick once ----------------------------------
@dataclass(frozen=True, slots=True)
class PeriodicEntry:
    """A job enqueued on a schedule: a cron expression (`cron`) or a fixed interval in seconds (`every`)."""

    name: str  # letters, digits, _ and -: each tick's job id is made of it
    job_name: str
    queue: str = "default"
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    cron: str | None = None
    every: int | None = None
    timeout: int | None = None
    repeats_left: int | None = None  # None: forever
    source: str = "config"  # config | code | rq-scheduler
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "job": self.job_name, "queue": self.queue, "cron": self.cron,
                "every": self.every, "repeats_left": self.repeats_left, "source": self.source,
                "next_run_at": _iso(self.next_run_at), "last_run_at": _iso(self.last_run_at)}


# Enqueue one tick of a schedule (the tick's time given); True once enqueued (or found enqueued already).
Fire = Callable[[PeriodicEntry, datetime], bool]
# The first tick of a schedule strictly after a time.
NextTick = Callable[[PeriodicEntry, datetime], datetime]


class PeriodicStore(Protocol):
    """Where schedules live, and the lock that lets several tickers take each tick once. Errors: BackendUnavailable,
    SchemaMissing."""

    def save(self, entry: PeriodicEntry) -> None:
        """Add or update a schedule (its next run kept while its cron/interval is unchanged)."""

    def add_once(self, entry: PeriodicEntry) -> bool:
        """Add a schedule unless one of that name exists; True if added."""

    def entries(self) -> list[PeriodicEntry]: ...

    def names(self, source: str) -> list[str]: ...

    def remove(self, names: Sequence[str], source: str | None = None) -> int: ...

    def tick(self, fire: Fire, next_tick: NextTick, limit: int = 100) -> int:
        """In one transaction: lock the due schedules no other ticker holds, fire each, and move each fired one to
        its next tick after now (so a catch-up fires once). How many fired."""

    def close(self) -> None: ...
