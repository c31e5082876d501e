"""The job handle an app holds: RQ's own Job where the job went to RQ, `migrator.Job` (RQ's Job API over the new
backend) where it went to Postgres. `Job.fetch(id)` looks in both backends; `get_current_job()` works inside a job
run by an RQ worker and by `migrator worker` alike."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import rq
from rq.exceptions import NoSuchJobError

from adapters.base import DEFAULT_TIMEOUT, BackendName, Enqueued, JobSpec
from adapters.handle import BackendJob
from migrator.app_router import default_router
from migrator.routing import router as routing_router


class Job(BackendJob):
    """A job on the new backend with rq.job.Job's API (meta, save_meta, refresh, cancel, delete, get_status,
    latest_result, ...); a subclass of rq's Job, so rq.Dependency(jobs=[job]) takes it. `.backend` says which
    backend holds a job, on this class and on RQ's own Job objects that migrator hands out."""

    @classmethod
    def fetch(cls, id: str, connection: Any = None, serializer: Any = None,  # type: ignore[override]
              router: routing_router.Router | None = None) -> rq.job.Job:
        """The job with this id, from the new backend (a migrator.Job) or RQ (RQ's own Job); NoSuchJobError when
        neither has it, as rq.job.Job.fetch raises."""
        found = find(router or default_router(connection, serializer), id)
        if found is None:
            raise NoSuchJobError(f"No such job: {id}")
        return found

    @classmethod
    def fetch_many(cls, job_ids: Iterable[str], connection: Any = None, serializer: Any = None,  # type: ignore[override]
                   router: routing_router.Router | None = None) -> list[rq.job.Job | None]:
        """Each job from whichever backend holds it, None for an id neither has (as RQ's fetch_many)."""
        chosen = router or default_router(connection, serializer)
        return [find(chosen, job_id) for job_id in job_ids]

    @classmethod
    def exists(cls, job_id: str, connection: Any = None,  # type: ignore[override]
               router: routing_router.Router | None = None) -> bool:
        return find(router or default_router(connection), job_id) is not None


def find(router: routing_router.Router, job_id: str) -> rq.job.Job | None:
    """The job from whichever backend holds it: the new backend first (where transfers land), then RQ."""
    new = router.backends[BackendName.POSTGRES]
    info = new.fetch_job(job_id)
    if info is not None:
        return Job.from_info(new, info)
    return _marked(router.backends[BackendName.RQ].native_job(job_id))


def handle(router: routing_router.Router, placed: Enqueued, spec: JobSpec) -> rq.job.Job:
    """What an enqueue returns: RQ's Job as RQ made it, or a migrator.Job built from what was enqueued (no read:
    get_status() and friends read the backend when asked)."""
    if placed.native is not None:
        setattr(placed.native, "backend", BackendName.RQ)
        return placed.native  # type: ignore[no-any-return]
    timeout = spec.timeout if spec.timeout is not None else DEFAULT_TIMEOUT  # what the row holds, as RQ's Job says
    return Job.enqueued(router.backends[placed.backend], spec, placed.job_id, placed.queue, timeout)


def backend_of(job: rq.job.Job) -> BackendName:
    """Which backend holds a job migrator handed out (`job.backend`, spelled so that type checkers follow)."""
    return getattr(job, "backend", BackendName.RQ)  # type: ignore[no-any-return]


def _marked(job: rq.job.Job | None) -> rq.job.Job | None:
    if job is not None:
        setattr(job, "backend", BackendName.RQ)  # RQ's Job has no such attribute: the app can tell them apart
    return job


def get_current_job() -> rq.job.Job | None:
    """The job running in this process: RQ's Job under an RQ worker, a migrator.Job under `migrator worker`
    (rq.get_current_job() returns the same)."""
    return rq.get_current_job()
