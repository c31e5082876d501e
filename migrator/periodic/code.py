"""Schedules declared in code: `schedule("nightly-report", "app.jobs.report", cron="0 3 * * *")` at an app's start
writes the schedule the workers tick (kept while its cron or interval is unchanged, like migrator.toml's)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from adapters.base import PeriodicEntry
from adapters.spec import job_name as name_of
from migrator import config, wiring
from migrator.periodic.schedule import validate


def schedule(name: str, job: Callable[..., Any] | str, *, cron: str | None = None, every: int | None = None,
             queue: str = "default", args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
             timeout: int | None = None) -> PeriodicEntry:
    """Add or update one schedule (BadInput when it is malformed); returns it with its next run."""
    entry = validate(PeriodicEntry(name, name_of(job), queue, tuple(args), dict(kwargs or {}), cron, every, timeout,
                                   source="code"))
    store = wiring.periodic_store(config.load())
    try:
        store.save(entry)
    finally:
        store.close()
    return entry


def unschedule(name: str) -> bool:
    """Drop a schedule declared in code; False when there was none."""
    store = wiring.periodic_store(config.load())
    try:
        return store.remove([name], source="code") > 0
    finally:
        store.close()
