"""JobBackend: what the router, drain, transfer and compat need from a backend."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from adapters.base.jobs import BackendName, Enqueued, JobInfo, JobSpec, PendingJob, StateCount
from adapters.base.errors import BackendUnavailable, InvalidJobOperation
from adapters.base.inventory import Inventory, Watch, WorkerInfo

__all__ = ["JobBackend"]


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

    def enqueue(self, spec: JobSpec, conn: Any = None) -> Enqueued:
        """Enqueue one job; `conn`, the app's own database connection: the job is written inside the app's
        transaction and exists only if it commits (a backend that cannot do so raises JobRefused)."""

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


