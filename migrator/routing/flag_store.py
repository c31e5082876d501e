"""FlagStore: the routing flags in Postgres, read in one statement; each edit one locked transaction that
rewrites the items it changes and records the change in the audit log."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import psycopg

from migrator.config import Settings
from migrator.errors import BadInput
from migrator.routing import history, tables
from migrator.routing.flipper_items import (FLAG_PREFIX, ROLLOUT_FLAG, decode, encode_job, encode_rollout,
                                            job_flag_name, require_flipper)
from migrator.routing.snapshot import LEGACY, RoutingSnapshot

EDIT_LOCK = 0x6D726F75  # "mrou": pg_advisory_xact_lock key that serialises routing edits


def validate_percent(percent: float) -> float:
    if not math.isfinite(percent) or not 0 <= percent <= 100:
        raise BadInput(f"--percent must be between 0 and 100, got {percent:g}; e.g. rollout --percent 10")
    return round(percent, 2)


@dataclass(frozen=True, slots=True)
class Change:
    """The outcome of one edit: entry is None when the edit changed nothing (and so was not recorded)."""

    before: RoutingSnapshot
    after: RoutingSnapshot
    entry: history.Entry | None = None


class FlagStore:
    """Routing flags in one database: snapshot() is one statement; each edit is one locked transaction that
    rewrites the items it changes and records the change in the audit log."""

    def __init__(self, url: str, schema: str = "public") -> None:
        require_flipper()
        self.url, self.schema = url, schema

    @classmethod
    def from_settings(cls, settings: Settings) -> "FlagStore":
        return cls(settings.database_url, settings.schema)

    def snapshot(self) -> RoutingSnapshot:
        with tables.connection(self.url) as conn:
            return self.read(conn)

    def read(self, conn: psycopg.Connection[Any]) -> RoutingSnapshot:
        return decode(tables.fetch_all(conn, self.schema, "read_flags", {"prefix": FLAG_PREFIX}))

    def flip(self, job: str, by: str | None = None) -> Change:
        return self._edit("flip", job, lambda s: s.with_job(job, "new"), by)

    def pin(self, job: str, by: str | None = None) -> Change:
        return self._edit("pin", job, lambda s: s.with_job(job, "legacy"), by)

    def unflip(self, job: str, by: str | None = None) -> Change:
        return self._edit("unflip", job, lambda s: s.with_job(job, None), by)

    def rollout_percent(self, percent: float, by: str | None = None) -> Change:
        p = validate_percent(percent)
        return self._edit("rollout-percent", None, lambda s: replace(s, rollout_all=False, percent=p), by,
                          {"percent": p})

    def rollout_all(self, by: str | None = None) -> Change:
        return self._edit("rollout-all", None, lambda s: replace(s, rollout_all=True, percent=100.0), by)

    def rollback(self, by: str | None = None) -> Change:
        """Everything back to legacy in one transaction: flips, pins and rollout, one audit entry."""
        return self._edit("rollback", None, lambda _: replace(LEGACY), by)

    def _edit(self, action: str, job: str | None, change: Callable[[RoutingSnapshot], RoutingSnapshot],
              by: str | None, detail: dict[str, Any] | None = None) -> Change:
        with tables.connection(self.url) as conn, conn.transaction():
            tables.fetch_all(conn, self.schema, "lock_routing", {"key": EDIT_LOCK})
            before = self.read(conn)  # under the lock: no other edit can slip in between read and write
            wanted = change(before)
            if replace(wanted, version=0, changed_at=None) == replace(before, version=0, changed_at=None):
                return Change(before, before)
            after = replace(wanted, version=before.version + 1, changed_at=datetime.now(timezone.utc))
            self._write(conn, before, after)
            entry = history.record(conn, self.schema, actor=by or history.default_actor(), action=action,
                                   job_name=job, detail=detail or {}, before=before, after=after)
        return Change(before, after, entry)

    def _write(self, conn: psycopg.Connection[Any], before: RoutingSnapshot, after: RoutingSnapshot) -> None:
        gone = (before.flipped | before.pinned) - (after.flipped | after.pinned)
        if gone:
            tables.fetch_all(conn, self.schema, "delete_flags", {"names": [job_flag_name(j) for j in gone]})
        changed = [(j, "new") for j in after.flipped - before.flipped]
        changed += [(j, "legacy") for j in after.pinned - before.pinned]
        for job, route in sorted(changed):
            tables.fetch_all(conn, self.schema, "upsert_flag",
                                 {"name": job_flag_name(job), "item": encode_job(job, route)})
        # Rewritten on every edit: it carries the version that readers and the audit log go by.
        tables.fetch_all(conn, self.schema, "upsert_flag", {"name": ROLLOUT_FLAG, "item": encode_rollout(after)})


