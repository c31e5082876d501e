"""What remains in the new backend, for a drain check: one GROUP BY over the jobs table (always per job name),
running jobs split by whether their worker is alive, jobs held by an interrupted transfer, and the live workers."""
from __future__ import annotations

from typing import Any

from adapters.base import BackendName, Inventory, JobState, Place, PLACE_OF_STATE, Remaining, StateCount, WorkerInfo
from adapters.pg_backend import sql as named
from adapters.pg_backend.db import Database
from adapters.pg_backend.liveness import LOCK_NAMESPACE

PG = BackendName.POSTGRES
WORKER_COLUMNS = ("id", "hostname", "pid", "queues", "started_at", "heartbeat_at", "running", "alive")


def workers(db: Database) -> list[WorkerInfo]:
    """Registered workers; alive = its session still holds the worker's advisory lock, which a dead process
    cannot (Postgres frees it with the session)."""
    found = []
    for row in db.fetch_all("list_workers", {"namespace": LOCK_NAMESPACE}):
        w: dict[str, Any] = dict(zip(WORKER_COLUMNS, row))
        detail = (f"pid {w['pid']} on {w['hostname']}" if w["alive"]
                  else "its session no longer holds the worker's liveness lock")
        found.append(WorkerInfo(PG, f"{w['hostname']}:{w['pid']}#{w['id']}", tuple(w["queues"] or ()),
                                bool(w["alive"]), detail, hostname=w["hostname"], pid=w["pid"],
                                state="running" if w["running"] else "idle", started_at=w["started_at"],
                                last_heartbeat=w["heartbeat_at"], running=int(w["running"]), worker_id=int(w["id"])))
    return found


def take_inventory(db: Database, counts: list[StateCount], job_name: str | None) -> Inventory:
    """Started jobs are split: held by a live worker, or stale (its worker died; a live worker's reaper requeues
    it within recovery_grace_seconds). Workers listed are the live ones: rows of dead workers are history."""
    rows = [Remaining(PG, c.queue, c.job_name, PLACE_OF_STATE[c.state], c.count) for c in counts
            if c.count and c.state is not JobState.STARTED]
    running = db.fetch_all("count_running", {"namespace": LOCK_NAMESPACE, "func": job_name})
    rows += [Remaining(PG, q, f, Place.STARTED if alive else Place.STALE, int(n)) for q, f, alive, n in running if n]
    rows += _in_transfer(db, job_name)
    live = tuple(w for w in workers(db) if w.alive)
    return Inventory(PG, tuple(rows), live)


def _in_transfer(db: Database, job_name: str | None) -> list[Remaining]:
    """Jobs an interrupted transfer took out of Postgres and has not landed in RQ: pending until one finishes."""
    query = named.queries(db.schema, "transfer.sql")["count_held"]
    with db.connection() as conn:
        held = conn.execute(query, {"func": job_name}).fetchall()
    return [Remaining(PG, q, f, Place.IN_TRANSFER, int(n)) for q, f, n in held]
