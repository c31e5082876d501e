"""Schedules as values: parse migrator.toml's [[periodic]] tables, validate them, and compute ticks (croniter for cron
expressions, in UTC; a fixed interval counts from the previous tick)."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from croniter import croniter

from adapters.base import PeriodicEntry
from migrator.errors import BadInput

NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")  # RQ's job id alphabet: each tick's job id is made of the name
KEYS = {"name", "job", "queue", "args", "kwargs", "cron", "every", "timeout"}


def validate(entry: PeriodicEntry) -> PeriodicEntry:
    """The entry, with its first run set when it has none; BadInput saying what to fix otherwise."""
    if not NAME.match(entry.name):
        raise BadInput(f"periodic name {entry.name!r} must be 1-100 letters, digits, _ or -")
    if (entry.cron is None) == (entry.every is None):
        raise BadInput(f"periodic {entry.name!r} needs exactly one of cron = \"*/5 * * * *\" or every = SECONDS")
    if entry.cron is not None and not croniter.is_valid(entry.cron):
        raise BadInput(f"periodic {entry.name!r}: {entry.cron!r} is not a cron expression (5 fields, or 6 with seconds"
                       " last)")
    if entry.every is not None and (not isinstance(entry.every, int) or entry.every < 1):
        raise BadInput(f"periodic {entry.name!r}: every must be a whole number of seconds >= 1")
    if entry.next_run_at is None:
        return replace(entry, next_run_at=next_tick(entry, datetime.now(timezone.utc)))
    return entry


def next_tick(entry: PeriodicEntry, after: datetime) -> datetime:
    """The first tick strictly after `after`: missed ticks are skipped, so a catch-up enqueues once."""
    if entry.cron is not None:
        return croniter(entry.cron, after).get_next(datetime)  # type: ignore[no-any-return]
    every = timedelta(seconds=entry.every or 1)
    anchor = entry.next_run_at or after
    if anchor > after:
        return anchor
    steps = math.floor((after - anchor) / every) + 1
    return anchor + steps * every


def tick_job_id(entry: PeriodicEntry, at: datetime) -> str:
    """The job id of one tick: the same for every ticker that takes it, so a second enqueue is a duplicate."""
    return f"periodic-{entry.name}-{int(at.timestamp())}"


def from_config(raw: Any) -> list[PeriodicEntry]:
    """migrator.toml's `[[periodic]]` tables (name, job, cron or every, queue, args, kwargs, timeout)."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(item, Mapping) for item in raw):
        raise BadInput("periodic must be a list of tables: [[periodic]] name = ..., job = ..., cron = ...")
    return [validate(_one(item)) for item in raw]


def _one(item: Mapping[str, Any]) -> PeriodicEntry:
    unknown = sorted(set(item) - KEYS)
    if unknown:
        raise BadInput(f"unknown periodic key {unknown[0]!r}; known keys: {', '.join(sorted(KEYS))}")
    if not isinstance(item.get("name"), str) or not isinstance(item.get("job"), str):
        raise BadInput("each [[periodic]] needs name = \"...\" and job = \"app.jobs.function\"")
    args: Sequence[Any] = item.get("args", [])
    return PeriodicEntry(item["name"], item["job"], str(item.get("queue", "default")), tuple(args),
                         dict(item.get("kwargs", {})), item.get("cron"), item.get("every"), item.get("timeout"))
