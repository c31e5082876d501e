"""FlagStore: the routing flags in the routing store (Postgres, through adapters.base.RoutingStore), read in one
statement; each edit one locked transaction that rewrites the items it changes and records it in the audit log."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from adapters.base import BackendName, FlagReader, RoutingEdit, RoutingStore
from migrator.errors import BadInput
from migrator.routing import history
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

    def __init__(self, tables: RoutingStore) -> None:
        require_flipper()
        self.tables = tables

    def snapshot(self) -> RoutingSnapshot:
        return self.read(self.tables)

    @staticmethod
    def read(source: FlagReader) -> RoutingSnapshot:
        """The snapshot held by the flags `source` reads: the store, an edit's transaction, or a cache session."""
        return decode(source.read_flags(FLAG_PREFIX))

    def history(self, limit: int = 50) -> list[history.Entry]:
        """The newest `limit` audit entries, newest first."""
        return history.entries(self.tables, limit)

    def flip(self, job: str, by: str | None = None, detail: dict[str, Any] | None = None) -> Change:
        """`detail` goes to the audit entry, e.g. {"forced": why} when a gate was overridden."""
        return self._edit("flip", job, lambda s: s.with_job(job, BackendName.POSTGRES), by, detail)

    def pin(self, job: str, by: str | None = None) -> Change:
        return self._edit("pin", job, lambda s: s.with_job(job, BackendName.RQ), by)

    def unflip(self, job: str, by: str | None = None) -> Change:
        return self._edit("unflip", job, lambda s: s.with_job(job, None), by)

    def rollout_percent(self, percent: float, by: str | None = None, detail: dict[str, Any] | None = None) -> Change:
        p = validate_percent(percent)
        return self._edit("rollout-percent", None, lambda s: replace(s, rollout_all=False, percent=p), by,
                          {**(detail or {}), "percent": p})

    def rollout_all(self, by: str | None = None, detail: dict[str, Any] | None = None) -> Change:
        return self._edit("rollout-all", None, lambda s: replace(s, rollout_all=True, percent=100.0), by, detail)

    def rollback(self, by: str | None = None) -> Change:
        """Everything back to legacy in one transaction: flips, pins and rollout, one audit entry."""
        return self._edit("rollback", None, lambda _: replace(LEGACY), by)

    def _edit(self, action: str, job: str | None, change: Callable[[RoutingSnapshot], RoutingSnapshot],
              by: str | None, detail: dict[str, Any] | None = None) -> Change:
        with self.tables.edit(EDIT_LOCK) as tx:
            before = self.read(tx)  # under the lock: no other edit can slip in between read and write
            wanted = change(before)
            if replace(wanted, version=0, changed_at=None) == replace(before, version=0, changed_at=None):
                return Change(before, before)
            after = replace(wanted, version=before.version + 1, changed_at=datetime.now(timezone.utc))
            self._write(tx, before, after)
            entry = history.record(tx, actor=by or history.default_actor(), action=action,
                                   job_name=job, detail=detail or {}, before=before, after=after)
        return Change(before, after, entry)

    @staticmethod
    def _write(tx: RoutingEdit, before: RoutingSnapshot, after: RoutingSnapshot) -> None:
        gone = (before.flipped | before.pinned) - (after.flipped | after.pinned)
        if gone:
            tx.delete_flags([job_flag_name(j) for j in gone])
        changed = [(j, BackendName.POSTGRES) for j in after.flipped - before.flipped]
        changed += [(j, BackendName.RQ) for j in after.pinned - before.pinned]
        for job, route in sorted(changed):
            tx.upsert_flag(job_flag_name(job), encode_job(job, route))
        # Rewritten on every edit: it carries the version that readers and the audit log go by.
        tx.upsert_flag(ROLLOUT_FLAG, encode_rollout(after))
