"""The JobBackend protocol every adapter implements, and the frozen values that cross it."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

DEFAULT_TIMEOUT = 180  # seconds, RQ's default job_timeout: apps rely on it
DEFAULT_RESULT_TTL = 500  # seconds, RQ's default
DEFAULT_FAILURE_TTL = 365 * 24 * 3600  # RQ keeps failed jobs a year


class BackendName(StrEnum):
    RQ = "rq"  # the legacy backend
    POSTGRES = "postgres"  # the new backend


class JobState(StrEnum):
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


class BackendError(Exception):
    """A backend could not do what was asked."""


class BackendUnavailable(BackendError):
    """The backend's server cannot be reached. The URL is already masked."""

    def __init__(self, backend: str, url: str, detail: str = "") -> None:
        self.backend, self.url, self.detail = backend, url, detail
        tail = f" ({detail})" if detail else ""
        super().__init__(f"{backend} is unreachable at {url}{tail}; start it or fix the URL")


class JobRefused(BackendError):
    """The backend cannot represent this job (payload or option); nothing was enqueued."""


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


@dataclass(frozen=True, slots=True)
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
    on_success: str | None = None
    on_failure: str | None = None


@dataclass(frozen=True, slots=True)
class Enqueued:
    backend: BackendName
    job_id: str
    queue: str
    job_name: str


@dataclass(frozen=True, slots=True)
class StateCount:
    queue: str
    job_name: str
    state: JobState
    count: int


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A job not yet finished, as a backend holds it, decoded without running it."""

    spec: JobSpec
    state: JobState
    enqueued_at: datetime | None = None
    error: str | None = None  # set when the payload could not be decoded


@dataclass(frozen=True, slots=True)
class JobInfo:
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


@runtime_checkable
class JobBackend(Protocol):
    """What the router, drain, transfer and compat need from a backend."""

    name: BackendName

    def ping(self) -> None: ...

    def enqueue(self, spec: JobSpec) -> Enqueued: ...

    def enqueue_many(self, specs: Iterable[JobSpec]) -> list[Enqueued]: ...

    def counts(self, queue: str | None = None, func: str | None = None) -> list[StateCount]: ...

    def iter_pending(self, queue: str | None = None, func: str | None = None) -> Iterator[PendingJob]: ...

    def fetch_job(self, job_id: str) -> JobInfo | None: ...


# -- routing persistence: where the flags, their audit log, the job names seen and the routers' presence live ----
class SchemaMissing(BackendError):
    """The backend's tables are not there: its schema was never migrated, or is older than this code."""

    def __init__(self, backend: str, url: str, what: str = "its tables") -> None:
        self.backend, self.url = backend, url
        super().__init__(f"{what} are missing in {backend} at {url}; run `migrator db migrate` first")


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One stored audit entry of a routing change; `before` and `after` are routing snapshots as JSON."""

    id: int
    at: datetime
    actor: str
    action: str
    job_name: str | None
    detail: Mapping[str, Any]
    before: Mapping[str, Any]
    after: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RouterRow:
    """One routing process as it last reported itself; `last_seen` is by the store's clock, not the host's."""

    host: str
    pid: int
    version: int
    first_seen: datetime
    last_seen: datetime


class FlagReader(Protocol):
    def read_flags(self, prefix: str) -> list[tuple[str, bytes]]:
        """(name, serialized flipper item) of every flag whose name starts with `prefix`, in one statement, so
        that a snapshot never mixes two edits."""


class RoutingEdit(FlagReader, Protocol):
    """One routing edit: a transaction under the edit lock; what it writes commits together or not at all."""

    def upsert_flag(self, name: str, item: bytes) -> None: ...

    def delete_flags(self, names: Iterable[str]) -> None: ...

    def insert_history(self, *, actor: str, action: str, job_name: str | None, detail: Mapping[str, Any],
                       before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[int, datetime]:
        """Record the change in the same transaction; returns the entry's id and time."""


class RoutingSession(FlagReader, Protocol):
    """The long-lived session of one process's flag cache: opened on first use, reopened on the call after an
    error. Raises BackendUnavailable or SchemaMissing, like the store."""

    def record_seen(self, names: Iterable[str]) -> None: ...

    def report_router(self, token: str, host: str, pid: int, version: int) -> None:
        """This process (`token`, unique per process) applies routing `version`; also its heartbeat."""

    def remove_router(self, token: str) -> None: ...

    def close(self) -> None: ...

    def after_fork(self) -> None:
        """In a forked child: let go of the parent's connection without closing it (closing would end the parent's
        session on the shared socket); the next call opens the child's own."""


class RoutingStore(FlagReader, Protocol):
    """Where routing lives: flags (flipper-client items), the audit log, the job names the router has seen, and
    the routers' presence. Errors: BackendUnavailable when unreachable, SchemaMissing before `db migrate`."""

    location: str  # where the store is, for messages (any password masked)

    def edit(self, lock_key: int) -> AbstractContextManager[RoutingEdit]: ...

    def history(self, limit: int) -> list[HistoryRow]:
        """The newest `limit` entries, newest first."""

    def record_seen(self, names: Iterable[str]) -> None: ...

    def seen_jobs(self) -> list[str]: ...

    def routers(self, within_seconds: float) -> list[RouterRow]:
        """Routers heard from in the last `within_seconds` (by the store's clock)."""

    def session(self, timeout: float) -> RoutingSession: ...


# -- playbook runs: where a rollout plan's progress lives, so that a run killed at any instant resumes ----------
@dataclass(frozen=True, slots=True)
class PlaybookRunRow:
    """One run of a playbook: `step` is the 1-based index of the step to run next (or being run)."""

    id: int
    playbook: str
    fingerprint: str
    status: str  # running | stopped | done | aborted
    step: int
    message: str
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlaybookStepRow:
    """One step a run reached: its intent is written before it acts, its outcome after."""

    run_id: int
    index: int
    kind: str
    status: str  # started | done | failed | rolled-back
    intent: Mapping[str, Any]
    outcome: Mapping[str, Any]
    started_at: datetime
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LockHolder:
    """The process running a playbook now."""

    host: str
    pid: int
    since: datetime


@dataclass(frozen=True, slots=True)
class RunStats:
    """Runs of some job names on a backend since a time: how they ended, and the wait from enqueue to start."""

    started: int
    finished: int
    failed: int
    p95_wait: float | None  # seconds; None when nothing started

    def to_json(self) -> dict[str, Any]:
        return {"started": self.started, "finished": self.finished, "failed": self.failed, "p95_wait": self.p95_wait}


class RunStatsSource(Protocol):
    def run_stats(self, since: datetime, job_names: Sequence[str] | None = None) -> RunStats:
        """Jobs (of `job_names`, or all) that started, finished or failed since `since`."""


class PlaybookState(Protocol):
    """Playbook runs and their steps, and the lock that lets one runner at a time drive a playbook.
    Errors: BackendUnavailable when unreachable, SchemaMissing before `db migrate`."""

    location: str

    def try_lock(self, playbook: str) -> LockHolder | None:
        """Take the playbook's lock on a session of its own, held until release_lock() or until this process
        ends; None when taken, else who holds it."""

    def release_lock(self, playbook: str) -> None: ...

    def holder(self, playbook: str) -> LockHolder | None: ...

    def latest_run(self, playbook: str) -> PlaybookRunRow | None: ...

    def active_runs(self) -> list[PlaybookRunRow]:
        """The newest run of each playbook that is running or stopped."""

    def start_run(self, playbook: str, fingerprint: str) -> PlaybookRunRow: ...

    def set_run(self, run_id: int, status: str, step: int, message: str = "") -> None: ...

    def steps(self, run_id: int) -> list[PlaybookStepRow]: ...

    def save_step(self, run_id: int, index: int, kind: str, status: str, intent: Mapping[str, Any],
                  outcome: Mapping[str, Any], advance_to: int | None = None) -> None:
        """Write one step; with `advance_to`, the run's next step moves in the same statement."""

    def close(self) -> None: ...
