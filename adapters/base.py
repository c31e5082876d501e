"""The JobBackend protocol every adapter implements, and the frozen values that cross it: what migrator's routing,
drain, transfer and compat know of a backend. migrator never imports a concrete adapter outside wiring (and
transfer, whose two-phase move is pairwise by nature)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from rq.exceptions import DuplicateJobError
from rq.exceptions import InvalidJobOperation as RQInvalidJobOperation

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


class InvalidOption(JobRefused, ValueError):
    """An enqueue option RQ itself refuses (ttl=0, timeout=0, a malformed job_id): a ValueError as in RQ, so
    apps' `except ValueError` still catches it; raised before routing, on either backend."""


class InvalidJobId(JobRefused, TypeError):
    """A job_id that is not a string: a TypeError, as RQ raises."""


class DuplicateJob(BackendError, DuplicateJobError):
    """unique=True and a job with that id exists: RQ's DuplicateJobError, so apps catch it unchanged. Not a
    JobRefused: the router must not send the job to the other backend instead."""


class InvalidJobOperation(BackendError, RQInvalidJobOperation):
    """cancel of a job that cannot be canceled (already canceled; on the new backend also started or ended):
    RQ's InvalidJobOperation, so apps catch it unchanged."""


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
    on_stopped: str | None = None
    # seconds per callback option ("on_success", ...) that rq.Callback(func, timeout=) gave, other than RQ's 60
    callback_timeouts: Mapping[str, int] = field(default_factory=dict)
    unique: bool = False  # RQ's unique=True: DuplicateJobError when a job with job_id exists


@dataclass(frozen=True, slots=True)
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
class PendingJob:
    """A job not yet finished, as a backend holds it, decoded without running it."""

    spec: JobSpec
    state: JobState
    enqueued_at: datetime | None = None
    error: str | None = None  # set when the payload could not be decoded


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


@runtime_checkable
class JobBackend(Protocol):
    """What the router, drain, transfer and compat need from a backend."""

    name: BackendName
    @property
    def url(self) -> str:
        """Where its server is; may hold a password: pass it through adapters.urls.mask_url to show it."""

    def ping(self) -> None:
        """Raise BackendUnavailable at once (one plain connection, no pool retries) when the server is down."""

    def close(self) -> None: ...

    def enqueue(self, spec: JobSpec) -> Enqueued: ...

    def enqueue_many(self, specs: Iterable[JobSpec]) -> list[Enqueued]: ...

    def refusal(self, spec: JobSpec) -> str | None:
        """Why this backend cannot carry the job (an option it cannot honour, a value it cannot encode); None if
        it can. Asks without enqueuing: the compat checker and transfer test payloads with it."""

    def counts(self, queue: str | None = None, job_name: str | None = None,
               by_job: bool = False) -> list[StateCount]:
        """Per queue and state; per job name when `job_name` or `by_job` is given (a backend may always be)."""

    def iter_pending(self, queue: str | None = None, job_name: str | None = None) -> Iterator[PendingJob]: ...

    def fetch_job(self, job_id: str) -> JobInfo | None: ...

    def native_job(self, job_id: str) -> Any | None:
        """The backend's own job object (an rq.job.Job on RQ); None when there is no such job or the backend has no
        object of its own (the new backend: migrator's job handle reads it through fetch_job)."""

    def save_meta(self, job_id: str, meta: Mapping[str, Any]) -> bool:
        """Replace the job's meta; False when the job is gone."""

    def cancel_job(self, job_id: str) -> bool:
        """Cancel a job no worker has started (RQ's cancel); False when it is gone. InvalidJobOperation when
        it cannot be canceled (already canceled; on the new backend also started or ended)."""

    def delete_job(self, job_id: str) -> bool:
        """Delete the job in whatever state (RQ's delete: a running job goes on running, its outcome is dropped)."""

    def queued_job_ids(self, queue: str) -> list[str]:
        """Ids of the queue's runnable jobs in the order they will run (RQ's Queue.job_ids)."""

    def queued_count(self, queue: str) -> int:
        """How many runnable jobs wait in the queue (RQ's len(queue): not scheduled, deferred or started)."""

    def empty_queue(self, queue: str) -> int:
        """Delete the queue's runnable jobs (RQ's Queue.empty()); how many."""

    def remove_pending(self, job_id: str) -> bool:
        """Delete one job no worker has taken; False when it started, ended or is gone."""

    def workers(self) -> list[WorkerInfo]: ...

    def inventory(self, job_name: str | None = None, *, queues: Sequence[str] = (), per_job: bool | None = None,
                  watch: Watch | None = None) -> Inventory:
        """What remains (pending and done), per queue, job name and place; `per_job` None lets the backend choose
        sizes alone when reading every job would be slow; `queues` adds queues to look at beyond those it knows."""


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


# -- periodic jobs: schedules the new backend's workers enqueue, each tick once ----------------------------------
@dataclass(frozen=True, slots=True)
class PeriodicEntry:
    """A job enqueued on a schedule: a cron expression (`cron`) or a fixed interval in seconds (`every`)."""

    name: str  # letters, digits, _ and -: each tick's job id is made of it
    job_name: str
    queue: str = "default"
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    cron: str | None = None
    every: int | None = None
    timeout: int | None = None
    repeats_left: int | None = None  # None: forever
    source: str = "config"  # config | code | rq-scheduler
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "job": self.job_name, "queue": self.queue, "cron": self.cron,
                "every": self.every, "repeats_left": self.repeats_left, "source": self.source,
                "next_run_at": _iso(self.next_run_at), "last_run_at": _iso(self.last_run_at)}


# Enqueue one tick of a schedule (the tick's time given); True once enqueued (or found enqueued already).
Fire = Callable[[PeriodicEntry, datetime], bool]
# The first tick of a schedule strictly after a time.
NextTick = Callable[[PeriodicEntry, datetime], datetime]


class PeriodicStore(Protocol):
    """Where schedules live, and the lock that lets several tickers take each tick once. Errors: BackendUnavailable,
    SchemaMissing."""

    def save(self, entry: PeriodicEntry) -> None:
        """Add or update a schedule (its next run kept while its cron/interval is unchanged)."""

    def add_once(self, entry: PeriodicEntry) -> bool:
        """Add a schedule unless one of that name exists; True if added."""

    def entries(self) -> list[PeriodicEntry]: ...

    def names(self, source: str) -> list[str]: ...

    def remove(self, names: Sequence[str], source: str | None = None) -> int: ...

    def tick(self, fire: Fire, next_tick: NextTick, limit: int = 100) -> int:
        """In one transaction: lock the due schedules no other ticker holds, fire each, and move each fired one to
        its next tick after now (so a catch-up fires once). How many fired."""

    def close(self) -> None: ...
