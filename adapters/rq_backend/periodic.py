"""rq-scheduler's periodic entries (cron and interval jobs in its own schedule) read as PeriodicEntry, and removed
once the new backend holds them, so that rq-scheduler stops enqueueing them. One-shot entries (enqueue_at/in) are
not periodic: drain-check counts them and transfer moves them like scheduled jobs."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job

from adapters.base import PeriodicEntry
from adapters.rq_backend import decode
from adapters.rq_backend.inventory import RQ_SCHEDULER_KEY


def scheduler_entries(connection: Redis, job_class: type[Job], serializer: Any
                      ) -> Iterator[tuple[str, PeriodicEntry | None, str]]:
    """(rq-scheduler job id, its entry or None, why None) for each periodic entry of rq-scheduler's schedule."""
    if RQ_SCHEDULER_KEY is None:
        return
    for raw_id, score in connection.zrange(RQ_SCHEDULER_KEY, 0, -1, withscores=True):
        job_id = decode.text(raw_id) or ""
        try:
            job = job_class.fetch(job_id, connection=connection, serializer=serializer)
        except NoSuchJobError:
            continue
        except Exception as exc:  # the app's serializer or code: say why, leave it where it is
            yield job_id, None, f"cannot be read: {type(exc).__name__}: {exc}"
            continue
        meta = job.meta or {}
        if "cron_string" not in meta and "interval" not in meta:
            continue  # a one-shot job: not periodic
        yield job_id, *_entry(job, meta, datetime.fromtimestamp(score, timezone.utc))


def _entry(job: Job, meta: dict[str, Any], next_run_at: datetime) -> tuple[PeriodicEntry | None, str]:
    if meta.get("use_local_timezone"):
        return None, "its cron runs in the scheduler's local time zone; the new backend's cron runs in UTC"
    repeat = meta.get("repeat")
    entry = PeriodicEntry(name=job.id, job_name=job.func_name or "", queue=job.origin, args=tuple(job.args),
                          kwargs=dict(job.kwargs), cron=meta.get("cron_string"),
                          every=int(meta["interval"]) if "cron_string" not in meta else None,
                          timeout=int(job.timeout) if job.timeout else None,
                          repeats_left=max(int(repeat), 1) if repeat is not None else None,  # runs left, as
                          source="rq-scheduler", next_run_at=next_run_at)  # rq-scheduler counts them
    return entry, ""


def remove_scheduler_entry(connection: Redis, job_class: type[Job], job_id: str) -> None:
    """Take the entry out of rq-scheduler's schedule, then its job hash (a crash in between leaves only a job hash
    that nothing schedules, runs or counts)."""
    if RQ_SCHEDULER_KEY is not None:
        connection.zrem(RQ_SCHEDULER_KEY, job_id)
    connection.delete(job_class.key_for(job_id))
