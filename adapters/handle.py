"""RQ's Job API over a backend that is not RQ: the handle of a job on the new backend, read and changed through the
JobBackend protocol. A subclass of rq.job.Job, so that rq.Dependency(jobs=[handle]) and `isinstance(j, Job)` accept
it; every method it answers is overridden here, none reaches for a Redis connection."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.results import Result

from adapters.base import BackendName, InvalidJobOperation, JobBackend, JobInfo, JobSpec, JobState

# JobState -> RQ's status word: retrying waits like a scheduled job (RQ puts a retry with an interval in its
# ScheduledJobRegistry, status "scheduled").
STATUS = {JobState.QUEUED: JobStatus.QUEUED, JobState.SCHEDULED: JobStatus.SCHEDULED,
          JobState.RETRYING: JobStatus.SCHEDULED, JobState.DEFERRED: JobStatus.DEFERRED,
          JobState.STARTED: JobStatus.STARTED, JobState.FINISHED: JobStatus.FINISHED,
          JobState.FAILED: JobStatus.FAILED, JobState.CANCELED: JobStatus.CANCELED}
POLL_SECONDS = 0.1  # latest_result(timeout=) polls: the new backend keeps one row per job, no result stream


class BackendJob(RQJob):
    """A job of `backend` with rq.job.Job's attributes and methods. Deliberately skips RQJob.__init__ (it requires
    a Redis connection): the attributes RQ's own properties read are set in _load."""

    # What RQ's own properties read and this backend never has, as class attributes: one handle is made per enqueue,
    # and each attribute set in __init__ cost every enqueue its time (an instance assignment still overrides one).
    connection = None  # type: ignore[assignment]  # no Redis: RQ code that needs one is not reached
    _success_callback = _failure_callback = _stopped_callback = None  # type: ignore[assignment]
    _data = b""
    _instance = None
    redis_server_version = None
    last_heartbeat = None
    allow_dependency_failures = None
    group_id = None
    enqueue_at_front_on_retry = False
    repeats_left = None
    repeat_intervals = None
    number_of_retries = None

    def __init__(self, backend: JobBackend, spec: JobSpec, info: JobInfo | None = None) -> None:
        self._backend = backend
        self.backend: BackendName = backend.name
        self.webhooks = []
        self._load(spec, info)

    def _load(self, spec: JobSpec, info: JobInfo | None) -> None:
        self._id = spec.job_id
        self._func_name, self._args, self._kwargs = spec.job_name, tuple(spec.args), dict(spec.kwargs)
        self.origin = spec.queue
        self._description = spec.description  # RQ's call string when None: made when first read (see description)
        self.meta = dict(spec.meta)
        self.timeout = spec.timeout
        self.result_ttl, self.ttl, self.failure_ttl = spec.result_ttl, spec.ttl, spec.failure_ttl
        self.retry_intervals = list(spec.retry.intervals) if spec.retry else None
        self._dependency_ids = list(spec.depends_on)
        self.enqueue_at_front = spec.at_front
        self._success_callback_name, self._failure_callback_name = spec.on_success, spec.on_failure
        self._stopped_callback_name = spec.on_stopped
        self._success_callback_timeout = spec.callback_timeouts.get("on_success")
        self._failure_callback_timeout = spec.callback_timeouts.get("on_failure")
        self._stopped_callback_timeout = spec.callback_timeouts.get("on_stopped")
        attempts = info.attempts if info else 0
        # RQ counts down one per retry granted: runs after the first are retries
        self.retries_left = max(spec.retry.max - max(attempts - 1, 0), 0) if spec.retry else None
        self._info = info
        self._status = STATUS[info.state] if info else JobStatus.QUEUED
        self.created_at = self.enqueued_at = info.enqueued_at if info else None  # type: ignore[assignment]
        self.started_at = info.started_at if info else None
        self.ended_at = info.finished_at if info else None
        self.worker_name = info.worker if info else None
        self._cached_result = None

    @property
    def description(self) -> str | None:
        """The job's description, else RQ's call string (`app.jobs.send(1)`), made when first read: an enqueue makes
        a handle each time, and most are never read."""
        if self._description is None:
            self._description = self.get_call_string()
        return self._description

    @description.setter
    def description(self, value: str | None) -> None:
        self._description = value

    @classmethod
    def enqueued(cls, backend: JobBackend, spec: JobSpec, job_id: str, queue: str, timeout: int) -> "BackendJob":
        """What an enqueue hands back: `spec` under the id, queue and timeout its row holds (set here, not through a
        copy of the spec: dataclasses.replace cost more than the rest of the handle, on every enqueue)."""
        job = cls(backend, spec)
        job._id, job.origin, job.timeout = job_id, queue, timeout
        return job

    @classmethod
    def from_info(cls, backend: JobBackend, info: JobInfo) -> "BackendJob":
        spec = info.spec or JobSpec(job_name=info.job_name, queue=info.queue, job_id=info.job_id)
        return cls(backend, spec, info)

    @classmethod
    def fetch_from(cls, backend: JobBackend, job_id: str) -> "BackendJob | None":
        info = backend.fetch_job(job_id)
        return cls.from_info(backend, info) if info is not None else None

    # -- reading ---------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the job again (RQ's refresh); NoSuchJobError-like: a job gone since reads as deleted."""
        info = self._backend.fetch_job(self.id)
        if info is None:
            raise NoSuchJobError(f"No such job: {self.id}")
        self._load(info.spec or JobSpec(job_name=info.job_name, queue=info.queue, job_id=info.job_id), info)

    def get_status(self, refresh: bool = True) -> JobStatus:
        if refresh:
            self.refresh()
        return self._status

    def get_meta(self, refresh: bool = True) -> dict[str, Any]:
        if refresh:
            self.refresh()
        return self.meta

    def get_position(self) -> int | None:
        ids = self._backend.queued_job_ids(self.origin)
        return ids.index(self.id) if self.id in ids else None

    @property
    def dependency(self) -> "BackendJob | None":
        """The first job this one depends on, on the same backend (a dependent job goes where its parent went)."""
        if not self._dependency_ids:
            return None
        return self.fetch_from(self._backend, self._dependency_ids[0])

    def fetch_dependencies(self, watch: bool = False, pipeline: Any = None) -> list[RQJob]:
        found = (self.fetch_from(self._backend, job_id) for job_id in self._dependency_ids)
        return [job for job in found if job is not None]

    # -- results ---------------------------------------------------------------------------------------------
    def latest_result(self, timeout: int = 0) -> Result | None:
        """The outcome of the latest run as RQ's Result (SUCCESSFUL with return_value, FAILED with exc_string);
        with `timeout`, wait up to that many seconds for one, as RQ does."""
        deadline = time.monotonic() + timeout
        while True:
            info = self._backend.fetch_job(self.id)
            if info is not None and info.state in (JobState.FINISHED, JobState.FAILED, JobState.RETRYING):
                return _result(info)
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_SECONDS)

    def results(self) -> list[Result]:
        """The latest outcome only: the new backend keeps one per job (RQ keeps each run's, newest first)."""
        latest = self.latest_result()
        return [latest] if latest is not None else []

    def return_value(self, refresh: bool = False) -> Any:
        if refresh or self._cached_result is None:
            self._cached_result = self.latest_result()
        if self._cached_result is not None and self._cached_result.type == Result.Type.SUCCESSFUL:
            return self._cached_result.return_value
        return None

    @property
    def result(self) -> Any:
        return self.return_value(refresh=True)

    @property
    def exc_info(self) -> str | None:
        latest = self.latest_result()
        return latest.exc_string if latest is not None else None

    # -- changing --------------------------------------------------------------------------------------------
    def save(self, pipeline: Any = None, include_meta: bool = True, include_result: bool = True) -> None:
        """RQ writes a whole Job hash to Redis; a job on the new backend changes through save_meta(), cancel() and
        delete() only: refused rather than half done."""
        raise InvalidJobOperation("a job on the postgres backend is saved by enqueue; change its meta with "
                                  "save_meta(), or cancel()/delete() it")

    def save_meta(self) -> None:
        """Store this handle's meta on the backend (RQ's save_meta: the whole dict replaces the stored one)."""
        self._backend.save_meta(self.id, self.meta)

    def cancel(self, pipeline: Any = None, enqueue_dependents: bool = False,
               remove_from_dependencies: bool = False) -> None:
        """Cancel a job that has not started: it will not run. InvalidJobOperation when it was canceled
        already, or has started or ended (the new backend stops no running job)."""
        if enqueue_dependents:
            raise InvalidJobOperation("cancel(enqueue_dependents=True) is not supported on the postgres backend: "
                                      "dependents of a canceled job stay deferred; cancel or delete them too")
        if not self._backend.cancel_job(self.id):
            raise NoSuchJobError(f"No such job: {self.id}")
        self._status = JobStatus.CANCELED

    def delete(self, pipeline: Any = None, remove_from_queue: bool = True, delete_dependents: bool = False) -> None:
        if delete_dependents:
            raise InvalidJobOperation("delete(delete_dependents=True) is not supported on the postgres backend")
        self._backend.delete_job(self.id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._id!r}, backend={self.backend.value}, enqueued_at={self.enqueued_at!r})"


def _result(info: JobInfo) -> Result:
    """RQ's Result of a job's latest run (a retrying job's latest run failed)."""
    ok = info.state is JobState.FINISHED
    failure = info.traceback or (f"{info.error_type}: {info.error_message}" if info.error_type else None)
    return Result(info.job_id, Result.Type.SUCCESSFUL if ok else Result.Type.FAILED, None,  # type: ignore[arg-type]
                  created_at=_latest(info.finished_at, info.started_at), return_value=info.result if ok else None,
                  exc_string=None if ok else failure, worker_name=info.worker or "")


def _latest(*times: datetime | None) -> datetime | None:
    return next((t for t in times if t is not None), None)
