"""Transfer: move not-yet-started jobs from one backend to the other, exactly once, even when killed midway.

RQ -> Postgres, per chunk of ids (crash points in docs/transfer.md):
  1. claim (one Lua script): the ids leave RQ's queue list / scheduled / deferred registry and enter our
     holding hash atomically. A worker that popped a job first keeps it; one we claimed no worker can pop.
  2. land (one Postgres transaction): a marker per id in migrator_transfers, and the jobs under their own ids.
     An id whose marker exists was landed by a killed run: it is not inserted again, even if it already ran.
  3. finish (one MULTI): delete the RQ job hashes and the holding entries.  4. forget the markers.
  A re-run first settles whatever the holding hash still holds (steps 2-4), then sweeps stale markers.
Postgres -> RQ is the mirror: take (rows move into migrator_transfers in one statement: no worker can claim
them), land (one MULTI: RQ enqueue plus a marker in a Redis set, skipped for marked ids), forget both.
"""
from __future__ import annotations

import logging

from adapters.pg_backend import transfer as pg_side
from adapters.pg_backend.backend import PostgresBackend
from adapters.rq_backend import RQBackend
from migrator.transfer import to_postgres, to_rq
from migrator.transfer.values import Direction, Progress, Tally, TransferReport, fewer_collections

log = logging.getLogger(__name__)


def transfer_pending(legacy: RQBackend, new: PostgresBackend, direction: Direction, job_name: str | None = None,
                     dry_run: bool = False, progress: Progress | None = None, chunk: int | None = None
                     ) -> TransferReport:
    """Move every not-started job (of job name `job_name`, or all) in `direction`; finish an interrupted run first.
    `chunk`: ids per step (None: the direction's own, values.CHUNK or TO_RQ_CHUNK)."""
    tally = Tally()
    step = to_postgres.move if direction is Direction.TO_POSTGRES else to_rq.move
    if dry_run:  # reads only: no lock, nothing held, nothing moved
        with fewer_collections():
            step(legacy, new, tally, job_name, True, progress or _quiet, chunk)
    else:
        _release_left_locks(legacy)
        with pg_side.transfer_lock(new), fewer_collections():
            step(legacy, new, tally, job_name, False, progress or _quiet, chunk)
    return tally.report(direction, dry_run)


def _release_left_locks(legacy: RQBackend) -> None:
    """Jobs abandoned by dead RQ workers are RQ's to retry or fail (a transfer moves none that started); a
    maintenance lock a dead worker left behind would keep RQ from doing so for 15 minutes: release it."""
    for lock in legacy.release_left_locks():
        log.warning("released RQ's maintenance lock of queue %r, left behind %ss ago by a dead worker: RQ's workers "
                    "retry or fail its abandoned jobs at their next maintenance", lock.queue, lock.held)


def _quiet(done: int, total: int) -> None:
    return None
