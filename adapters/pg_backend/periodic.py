"""PgPeriodicStore: the schedules of periodic jobs (migrator_periodic) and the ticking transaction that lets any number
of workers take each tick exactly once (see sql/periodic.sql and migration 0008)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from adapters import payload
from adapters.base import Fire, NextTick, PeriodicEntry
from adapters.pg_backend import db as pg_db
from adapters.pg_backend.db import Database


class PgPeriodicStore:
    """PeriodicStore on the new backend's database."""

    def __init__(self, url: str, schema: str = "public") -> None:
        self.db = Database(url, schema, pool_size=2, filename="periodic.sql")

    def close(self) -> None:
        self.db.close()

    def save(self, entry: PeriodicEntry) -> None:
        self.db.fetch_one("save_periodic", _params(entry))

    def add_once(self, entry: PeriodicEntry) -> bool:
        return self.db.fetch_one("add_periodic_once", _params(entry)) is not None

    def entries(self) -> list[PeriodicEntry]:
        return [_entry(row) for row in self.db.fetch_all("list_periodic")]

    def names(self, source: str) -> list[str]:
        return [name for name, in self.db.fetch_all("periodic_names", {"source": source})]

    def remove(self, names: Sequence[str], source: str | None = None) -> int:
        return len(self.db.fetch_all("remove_periodic", {"names": list(names), "source": source}))

    def tick(self, fire: Fire, next_tick: NextTick, limit: int = 100) -> int:
        """Why one transaction: the row locks are what keep two tickers off the same tick, and next_run_at moves in
        the transaction that held them. The job itself is enqueued by `fire` through the router, outside this
        transaction; its id is made of the tick, so a ticker that dies between the two re-fires a duplicate id,
        which both backends refuse (unique), rather than a second job."""
        fired = 0
        with self.db.connection() as conn, pg_db.translated(self.db.url, "the periodic schedules"), \
                conn.transaction():
            now = datetime.now(timezone.utc)
            for row in self.db.fetch_all("lock_due_periodic", {"limit": limit}, conn=conn):
                entry = _entry(row)
                if not fire(entry, entry.next_run_at or now):
                    continue  # not enqueued (a backend down): the tick stays due, the next turn tries again
                self.db.execute("advance_periodic", {"name": entry.name, "next_run_at": next_tick(entry, now),
                                                     "ran_at": now}, conn=conn)
                fired += 1
        return fired


def _params(entry: PeriodicEntry) -> dict[str, Any]:
    args, kwargs = payload.encode_call(entry.args, dict(entry.kwargs))
    return {"name": entry.name, "func": entry.job_name, "queue": entry.queue, "args": args, "kwargs": kwargs,
            "cron": entry.cron, "every_s": entry.every, "timeout_s": entry.timeout, "repeats_left": entry.repeats_left,
            "source": entry.source, "next_run_at": entry.next_run_at or datetime.now(timezone.utc)}


def _entry(row: tuple[Any, ...]) -> PeriodicEntry:
    (name, func, queue, args, kwargs, cron, every_s, timeout_s, repeats_left, source, next_run_at, last_run_at) = row
    return PeriodicEntry(name, func, queue, tuple(payload.decode_value(args)), payload.decode_value(kwargs), cron,
                         every_s, timeout_s, repeats_left, source, next_run_at, last_run_at)
