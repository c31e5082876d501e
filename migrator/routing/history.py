"""The audit log of routing changes: who, when, what, and the routing before and after each change."""
from __future__ import annotations

import getpass
import os
import shlex
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from migrator.routing import tables
from migrator.routing.snapshot import RoutingSnapshot


@dataclass(frozen=True, slots=True)
class Entry:
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


def record(conn: psycopg.Connection[Any], schema: str, *, actor: str, action: str, job_name: str | None,
           detail: dict[str, Any], before: RoutingSnapshot, after: RoutingSnapshot) -> Entry:
    """Write one entry on `conn`, inside the caller's transaction, so no change goes unrecorded."""
    rows = tables.fetch_all(conn, schema, "insert_history", {
        "actor": actor, "action": action, "job": job_name, "detail": Jsonb(detail),
        "before": Jsonb(before.to_json()), "after": Jsonb(after.to_json())})
    entry_id, at = rows[0]
    return Entry(int(entry_id), at, actor, action, job_name, detail, before, after)


def entries(url: str, schema: str = "public", limit: int = 50) -> list[Entry]:
    """The newest `limit` entries, newest first."""
    with tables.connection(url) as conn:
        rows = tables.fetch_all(conn, schema, "list_history", {"limit": limit})
    return [Entry(int(i), at, actor, action, job, detail or {}, RoutingSnapshot.from_json(before),
                  RoutingSnapshot.from_json(after))
            for i, at, actor, action, job, detail, before, after in rows]


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
