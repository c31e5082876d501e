"""The job a worker process is running, where rq.get_current_job() looks for it: RQ's worker puts the running Job
on rq.job's own slot (a LocalStack `_job_stack` in RQ 2.x, a ContextVar `_current_job` in RQ 3.0) and so does ours,
so that unchanged job code calling get_current_job().meta / save_meta() works on the new backend too. Only worker
processes touch it; an app process's rq is left as it is."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from rq import job as rq_job

from adapters.base import BackendName, JobInfo, JobSpec, JobState
from adapters.handle import BackendJob
from adapters.pg_backend.backend import PostgresBackend

_backend: PostgresBackend | None = None  # this worker process's, for save_meta() and refresh() from inside a job
_current_job: Any = getattr(rq_job, "_current_job", None)  # RQ 3.0's ContextVar; None on RQ 2.x, which has instead
_job_stack: Any = getattr(rq_job, "_job_stack", None)  # its LocalStack


def serve(url: str, schema: str) -> None:
    """Say where the running jobs' handles read and write (called once by the worker before it runs any job). The
    backend opens its single connection on the first save_meta(), so jobs that never use it cost nothing."""
    global _backend
    close()
    _backend = PostgresBackend(url, schema=schema, pool_size=1)


def close() -> None:
    global _backend
    if _backend is not None:
        _backend.close()
        _backend = None


def handle(spec: JobSpec, attempts: int, enqueued_at: datetime | None) -> BackendJob:
    """The running job's handle: status started, meta as claimed (save_meta() writes it through)."""
    if _backend is None:
        raise RuntimeError("current_job.serve() was not called in this worker process")
    info = JobInfo(BackendName.POSTGRES, spec.job_id or "", spec.job_name, spec.queue, JobState.STARTED, attempts,
                   enqueued_at=enqueued_at, started_at=datetime.now(timezone.utc), spec=spec)
    return BackendJob(_backend, spec, info)


class Running:
    """rq.get_current_job() returns `job` inside this block, in RQ 2.x and 3.0 alike. A class, not a
    @contextmanager: the generator it made for every job was a tenth of what a no-op job cost the worker."""

    __slots__ = ("job", "token")

    def __init__(self, job: BackendJob) -> None:
        self.job = job
        self.token: Any = None

    def __enter__(self) -> BackendJob:
        if _current_job is not None:
            self.token = _current_job.set(self.job)
        else:
            _job_stack.push(self.job)
        return self.job

    def __exit__(self, *exc: object) -> None:
        if _current_job is not None:
            _current_job.reset(self.token)
        else:
            _job_stack.pop()
