"""The adapters' errors: what migrator catches at its boundary (only cli maps them to exit codes)."""
from __future__ import annotations

from rq.exceptions import DuplicateJobError
from rq.exceptions import InvalidJobOperation as RQInvalidJobOperation

__all__ = ["BackendError", "BackendUnavailable", "DuplicateJob", "InvalidJobId", "InvalidJobOperation", "InvalidOption",
           "JobRefused", "SchemaMissing"]


class BackendError(Exception):
    """A backend could not do what was asked."""


class BackendUnavailable(BackendError):
    """The backend's server cannot be reached. The URL is already masked."""

    def __init__(self, backend: str, url: str, detail: str = "", in_doubt: bool = False) -> None:
        self.backend, self.url, self.detail = backend, url, detail
        # The connection broke after the request was sent: the write may have happened (a commit whose answer
        # was lost with the server). The router holds a fallback copy of such a job until the backend answers.
        self.in_doubt = in_doubt
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


class SchemaMissing(BackendError):
    """The backend's tables are not there: its schema was never migrated, or is older than this code."""

    def __init__(self, backend: str, url: str, what: str = "its tables") -> None:
        self.backend, self.url = backend, url
        super().__init__(f"{what} are missing in {backend} at {url}; run `migrator db migrate` first")
