"""What a job is on either backend: its spec, state, where it went, what it came to."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


__all__ = ["BackendName", "DEFAULT_FAILURE_TTL", "DEFAULT_RESULT_TTL", "DEFAULT_TIMEOUT", "Enqueued", "JobInfo", "JobSpec",
           "JobState", "PENDING_STATES", "PendingJob", "PickleOptIn", "RetryPolicy", "StateCount"]


DEFAULT_TIMEOUT = 180  # seconds, RQ's default job_timeout: apps rely on it
DEFAULT_RESULT_TTL = 500  # seconds, RQ's default
DEFAULT_FAILURE_TTL = 365 * 24 * 3600  # RQ keeps failed jobs a year


class BackendName(StrEnum):
    """The two backends, in the design's words."""

    RQ = "rq"  # the legacy backend
    POSTGRES = "postgres"  # the new backend


class JobState(StrEnum):
    """A job's state in either backend, in RQ's words where RQ has one."""

    QUEUED = "queued"  # runnable now
    SCHEDULED = "scheduled"  # runnable at a later time
    DEFERRED = "deferred"  # waiting on dependencies
    STARTED = "started"  # held by a worker
    RETRYING = "retrying"  # failed, waiting for its next attempt
    FAILED = "failed"  # out of attempts
    FINISHED = "finished"
    CANCELED = "canceled"


PENDING_STATES = frozenset({JobState.QUEUED, JobState.SCHEDULED, JobState.DEFERRED, JobState.STARTED,
                            JobState.RETRYING})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """RQ's Retry(max=, interval=): `intervals` empty means exponential backoff with jitter."""

    max: int
    intervals: tuple[int, ...] = ()

    def delay_for(self, attempt: int) -> int | None:
        """Fixed delay (s) before retry number `attempt` (1-based), None when intervals are not given."""
        if not self.intervals:
            return None
        return self.intervals[min(attempt - 1, len(self.intervals) - 1)]


# JobSpec and PendingJob are values like the frozen ones here: nothing changes one once it is made
# (dataclasses.replace makes another). They are not frozen because a frozen dataclass sets each field through
# object.__setattr__, 4 µs of a JobSpec's 5: a transfer or a drain-check decodes tens of thousands a second, and
# that was a fifth of a transfer's time.
@dataclass(slots=True)
class JobSpec:
    """One job to enqueue, in the design's words: `func` is the job name (dotted path)."""

    job_name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str = "default"
    job_id: str | None = None
    timeout: int | None = None
    result_ttl: int | None = None
    ttl: int | None = None
    failure_ttl: int | None = None
    retry: RetryPolicy | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    run_at: datetime | None = None  # aware datetime; None = now
    priority: int = 0
    at_front: bool = False
    depends_on: tuple[str, ...] = ()
    allow_failure: bool = False  # rq.Dependency(allow_failure=True): run once the parents ended, failed too
    on_success: str | None = None
    on_failure: str | None = None
    on_stopped: str | None = None
    # seconds per callback option ("on_success", ...) that rq.Callback(func, timeout=) gave, other than RQ's 60
    callback_timeouts: Mapping[str, int] = field(default_factory=dict)
    unique: bool = False  # RQ's unique=True: DuplicateJobError when a job with job_id exists


@dataclass(slots=True)  # a value, not frozen: see JobSpec (a bulk enqueue or a transfer makes one a job)
class Enqueued:
    """What a backend says after taking a job: which backend, the job's id, queue and job name; `native` is the
    backend's own job object when it has one (RQ's Job, which migrator.Queue hands back to the app as is)."""

    backend: BackendName
    job_id: str
    queue: str
    job_name: str
    native: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StateCount:
    """Jobs of one queue, job name (ANY_JOB when counted from sizes) and state."""

    queue: str
    job_name: str
    state: JobState
    count: int

    def to_json(self) -> dict[str, Any]:
        return {"queue": self.queue, "job": self.job_name, "state": str(self.state), "count": self.count}


@dataclass(frozen=True, slots=True)
class PickleOptIn:
    """Which job names may carry pickled arguments on the new backend (`pickle_payloads` in migrator.toml): none
    by default, some by name, or every one. The enqueue side pickles what tagged JSON cannot carry for these
    only; the worker unpickles these only, and refuses unread a pickled row of any other job."""

    names: frozenset[str] = frozenset()
    everything: bool = False

    def covers(self, job_name: str) -> bool:
        return self.everything or job_name in self.names

    def __bool__(self) -> bool:
        return self.everything or bool(self.names)

    def to_json(self) -> bool | list[str]:
        return True if self.everything else sorted(self.names)

    def describe(self) -> str:
        if self.everything:
            return "every job"
        return ", ".join(sorted(self.names)) if self.names else "no job"


@dataclass(slots=True)  # a value, not frozen: see JobSpec
class PendingJob:
    """A job not yet finished, as a backend holds it, decoded without running it."""

    spec: JobSpec
    state: JobState
    enqueued_at: datetime | None = None
    error: str | None = None  # set when the payload could not be decoded
    pickled: bool = False  # its arguments are pickled (pickle_payloads): read only by a worker that opts it in


@dataclass(frozen=True, slots=True)
class JobInfo:
    """One job as either backend reports it: state, attempts, result or error, times, worker."""

    backend: BackendName
    job_id: str
    job_name: str
    queue: str
    state: JobState
    attempts: int = 0
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker: str | None = None  # who runs it now: RQ's worker name; "hostname:pid" on the new backend
    # What the job was enqueued with (read back by migrator's job handle on the new backend; RQ's own Job
    # object carries them on RQ, where these may stay at their defaults).
    spec: JobSpec | None = None
    run_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.job_id, "backend": str(self.backend), "state": str(self.state), "queue": self.queue,
                "job": self.job_name, "attempts": self.attempts, "enqueued_at": _iso(self.enqueued_at),
                "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at), "worker": self.worker,
                "result": self.result, "error_type": self.error_type, "error_message": self.error_message,
                "traceback": self.traceback}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


