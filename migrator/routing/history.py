"""The audit log of routing changes: who, when, what, and the routing before and after each change."""
from __future__ import annotations

import getpass
import os
import shlex
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.base import HistoryRow, RoutingEdit, RoutingStore
from migrator.routing.snapshot import RoutingSnapshot


@dataclass(frozen=True, slots=True)
class Entry:
    """One routing change in the audit log: who, when, what, and the routing before and after."""

    id: int
    at: datetime
    actor: str
    action: str  # flip | pin | unflip | rollout-percent | rollout-all | rollback
    job_name: str | None
    detail: dict[str, Any]
    before: RoutingSnapshot
    after: RoutingSnapshot

    @property
    def restore_commands(self) -> list[str]:
        """Commands that bring back the routing this entry replaced (what `history` prints for a rollback)."""
        return restore_commands(self.before)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "actor": self.actor, "action": self.action,
                "job": self.job_name, "detail": self.detail, "before": self.before.to_json(),
                "after": self.after.to_json(), "restore_commands": self.restore_commands}


def default_actor() -> str:
    """OS user @ host of this process: who made a change when `--by` is not given."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def restore_commands(snapshot: RoutingSnapshot) -> list[str]:
    """CLI commands that recreate `snapshot` from all-legacy routing.

    `--force` because a job flipped once may no longer be known where the commands are run."""
    commands = [f"migrator flip {shlex.quote(job)} --force" for job in sorted(snapshot.flipped)]
    commands += [f"migrator flip {shlex.quote(job)} --back --force" for job in sorted(snapshot.pinned)]
    if snapshot.rollout_all:
        commands.append("migrator rollout --all")
    elif snapshot.threshold > 0:
        commands.append(f"migrator rollout --percent {snapshot.percent:g}")
    return commands


def record(tx: RoutingEdit, *, actor: str, action: str, job_name: str | None, detail: dict[str, Any],
           before: RoutingSnapshot, after: RoutingSnapshot) -> Entry:
    """Write one entry inside the edit's transaction, so no change goes unrecorded."""
    entry_id, at = tx.insert_history(actor=actor, action=action, job_name=job_name, detail=detail,
                                     before=before.to_json(), after=after.to_json())
    return Entry(entry_id, at, actor, action, job_name, detail, before, after)


def entries(store: RoutingStore, limit: int = 50) -> list[Entry]:
    """The newest `limit` entries, newest first."""
    return [from_row(row) for row in store.history(limit)]


def from_row(row: HistoryRow) -> Entry:
    return Entry(row.id, row.at, row.actor, row.action, row.job_name, dict(row.detail),
                 RoutingSnapshot.from_json(dict(row.before)), RoutingSnapshot.from_json(dict(row.after)))


def summarize(before: RoutingSnapshot, after: RoutingSnapshot) -> str:
    """One line saying what changed between two routings, e.g. `+flipped a.b; rollout 10% -> 30%`."""
    parts = [f"{sign}{label} {job}"
             for label, old, new in (("flipped", before.flipped, after.flipped), ("pinned", before.pinned, after.pinned))
             for sign, jobs in (("+", new - old), ("-", old - new)) for job in sorted(jobs)]
    rule_before, rule_after = rollout_rule(before), rollout_rule(after)
    if rule_before != rule_after:
        parts.append(f"rollout {rule_before} -> {rule_after}")
    return "; ".join(parts) or "no change"


def rollout_rule(snapshot: RoutingSnapshot) -> str:
    if snapshot.rollout_all:
        return "all"
    return f"{snapshot.percent:g}%" if snapshot.threshold > 0 else "off"
