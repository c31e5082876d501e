"""What remains in a backend, for a drain check: places finer than states, rows, workers, arrivals."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from adapters.base.jobs import BackendName, JobState, _iso

__all__ = ["ANY_JOB", "Arrival", "DONE_PLACES", "Inventory", "MARK_PREFIX", "NEEDS_WORKER", "PLACE_OF_STATE", "Place",
           "Remaining", "Watch", "WorkerInfo"]


# The job name of a count that was not broken down per job name (counted from sizes only).
ANY_JOB = "*"


class Place(StrEnum):
    """Where a job sits, finer than JobState: a drain report must say *why* a backend is not empty."""

    QUEUED = "queued"
    INTERMEDIATE = "intermediate"  # popped by an RQ worker, not yet registered as started
    SCHEDULED = "scheduled"
    RETRYING = "retrying"  # failed once, waiting (queued or scheduled) for its next attempt
    DEFERRED = "deferred"
    STARTED = "started"
    STALE = "stale"  # held by a worker that is dead
    FAILED_RETRYABLE = "failed-retryable"  # in RQ's failed registry with retries left
    RQ_SCHEDULER = "rq-scheduler"  # rq-scheduler's own schedule, outside RQ's registries
    IN_TRANSFER = "in-transfer"  # taken out by a transfer that was interrupted: neither backend runs it yet
    FAILED = "failed"
    FINISHED = "finished"
    CANCELED = "canceled"


# Listed for the record, never a reason to wait: nothing will run them again by itself.
DONE_PLACES = frozenset({Place.FAILED, Place.FINISHED, Place.CANCELED})
# Places whose jobs need a live worker of their queue to ever leave.
NEEDS_WORKER = frozenset(Place) - DONE_PLACES - {Place.STARTED, Place.RQ_SCHEDULER, Place.IN_TRANSFER}
# Where a job in each JobState sits, when nothing finer is known.
PLACE_OF_STATE = {JobState.QUEUED: Place.QUEUED, JobState.SCHEDULED: Place.SCHEDULED,
                  JobState.RETRYING: Place.RETRYING, JobState.DEFERRED: Place.DEFERRED,
                  JobState.STARTED: Place.STARTED, JobState.FAILED: Place.FAILED,
                  JobState.FINISHED: Place.FINISHED, JobState.CANCELED: Place.CANCELED}


@dataclass(frozen=True, slots=True)
class Remaining:
    """Jobs of one queue and job name in one place of one backend: a row of a drain report."""

    backend: BackendName
    queue: str
    job_name: str  # ANY_JOB when counted from sizes only
    place: Place
    count: int

    @property
    def pending(self) -> bool:
        return self.place not in DONE_PLACES

    def to_json(self) -> dict[str, Any]:
        return {"backend": str(self.backend), "queue": self.queue, "job": self.job_name, "state": str(self.place),
                "count": self.count, "pending": self.pending}


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker of a backend, judged alive or dead by the adapter (each backend knows how its workers die)."""

    backend: BackendName
    name: str
    queues: tuple[str, ...]
    alive: bool
    detail: str  # why alive or dead, in a few words: "busy", "idle", "process 123 is gone"
    hostname: str | None = None
    pid: int | None = None
    state: str = ""  # the backend's own word: RQ's idle/busy/suspended; "running"/"idle" on the new backend
    current_job_id: str | None = None
    started_at: datetime | None = None
    last_heartbeat: datetime | None = None
    running: int = 0  # jobs it holds now
    runs_scheduler: bool | None = None  # RQ: True/False when RQ records it, None when it cannot tell
    worker_id: int | None = None  # the new backend's numeric worker id

    def to_json(self) -> dict[str, Any]:
        return {"backend": str(self.backend), "name": self.name, "queues": list(self.queues), "alive": self.alive,
                "detail": self.detail, "host": self.hostname, "pid": self.pid, "state": self.state,
                "current_job_id": self.current_job_id, "started_at": _iso(self.started_at),
                "heartbeat_at": _iso(self.last_heartbeat), "running": self.running,
                "runs_scheduler": self.runs_scheduler, "id": self.worker_id}


# Says whether a job name is routed to the other backend (so its arrivals are worth dating: stray enqueues).
Watch = Callable[[str], bool]
MARK_PREFIX = "migrator_"  # meta keys the toolkit itself writes on a job (e.g. why the router sent it where it is)


@dataclass(frozen=True, slots=True)
class Arrival:
    """One job of a watched job name, and when it entered the backend; `marks` are the toolkit's own meta keys
    on it (MARK_PREFIX...), which tell a job the router put there on purpose from one that came around it."""

    job_name: str
    at: datetime
    marks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Inventory:
    """What remains in one backend: every pending (and, listed only, done) job by queue, job name and place, the
    workers that serve it, and what the adapter saw that the drain check must warn about."""

    backend: BackendName
    rows: tuple[Remaining, ...]
    workers: tuple[WorkerInfo, ...]
    per_job: bool = True  # False: counted from sizes, job names not read
    # jobs read one by one (pending or done) whose job name `watch` accepted
    arrivals: tuple[Arrival, ...] = ()
    # (queue, scheduled jobs) of queues whose scheduled jobs no live scheduler will ever enqueue
    unscheduled: tuple[tuple[str, int], ...] = ()
    # (queue, seconds until it expires) of queues whose maintenance lock a dead worker left behind (RQ): until
    # then no worker fails or retries the jobs abandoned there
    uncleaned: tuple[tuple[str, int], ...] = ()


