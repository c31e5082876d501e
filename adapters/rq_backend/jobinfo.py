"""One RQ job as a JobInfo: state, attempts, result or error, times; read through rq's Job and its results."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import rq
from redis import Redis
from rq.exceptions import NoSuchJobError

from adapters.base import BackendName, JobInfo, JobState
from adapters.rq_backend import decode


def fetch(connection: Redis, job_class: type[rq.job.Job], serializer: Any, job_id: str) -> JobInfo | None:
    try:
        job = job_class.fetch(job_id, connection=connection, serializer=serializer)
    except NoSuchJobError:
        return None
    status = decode.text(job.get_status(refresh=False)) or "created"
    retries = getattr(job, "number_of_retries", None)  # RQ >= 2.1 counts them; 2.0 does not
    started = _aware(job.started_at)
    state = decode.waiting_state(decode.STATUS_STATES.get(status, JobState.QUEUED), status,
                                 "1" if started else None, str(retries or 0))
    result, traceback = _outcome(job)
    error_type, error_message = _error(traceback)
    return JobInfo(BackendName.RQ, job.id, decode.func_name(job.data, serializer), job.origin, state,
                   _attempts(state, retries, started), result, error_type, error_message, traceback,
                   _aware(job.enqueued_at), started, _aware(job.ended_at),
                   decode.text(getattr(job, "worker_name", None)) if state is JobState.STARTED else None)


def _attempts(state: JobState, retries: int | None, started: datetime | None) -> int:
    """Runs begun so far: a job waiting for a retry has run once per retry granted."""
    ran = int(retries or 0)
    if state in (JobState.QUEUED, JobState.SCHEDULED, JobState.RETRYING, JobState.DEFERRED):
        return ran or (1 if started else 0)
    return ran + 1 if started or ran else 0


def _outcome(job: rq.job.Job) -> tuple[Any, str | None]:
    """(return value of the latest run, traceback of the latest failed run); a result that cannot be read
    here (another serializer or code version) reads as None rather than hiding the job."""
    try:
        results = job.results()  # newest first
    except Exception:
        return None, None
    value = results[0].return_value if results else None
    traceback = next((r.exc_string for r in results if r.exc_string), None)
    return value, traceback


def _error(traceback: str | None) -> tuple[str | None, str | None]:
    """Exception type and message from the last line of a Python traceback ("ValueError: boom")."""
    if not traceback:
        return None, None
    last = traceback.strip().splitlines()[-1]
    kind, _, message = last.partition(": ")
    return kind.rsplit(".", 1)[-1] or None, message or None


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
