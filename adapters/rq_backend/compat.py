"""The few places where RQ 2.x and RQ 3.0 differ, found by feature rather than by version number.

RQ 3 adds two places where a not-yet-started job can wait: ReadyJobRegistry (dependencies met, about to be
enqueued) and RateLimitRegistry (held back by a concurrency limit, keyed by limit rather than by queue).
"""
from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import rq
from redis import Redis
from rq.job import JobStatus
from rq.registry import BaseRegistry

try:  # RQ >= 3.0
    from rq.registry import ReadyJobRegistry  # type: ignore[attr-defined,unused-ignore]
except ImportError:  # RQ 2.x
    ReadyJobRegistry = None  # type: ignore[assignment,misc]

try:  # RQ >= 3.0
    from rq.rate_limit import RateLimitRegistry
except ImportError:  # RQ 2.x
    RateLimitRegistry = None  # type: ignore[assignment,misc]

RQ_VERSION = rq.VERSION
# Job statuses that only RQ 3 writes; both mean "not started, will run": the adapter reports them as queued.
WAITING_STATUSES = frozenset({"rate_limited", "ready_to_enqueue"})


def ready_registry(queue: rq.Queue) -> BaseRegistry | None:
    """RQ 3's registry of dependents whose parents finished and that are about to be pushed on `queue`."""
    if ReadyJobRegistry is None:
        return None
    return ReadyJobRegistry(queue=queue)


def rate_limited_keys(connection: Redis) -> Iterator[str]:
    """The Redis keys of RQ 3's sorted sets of jobs held back by a rate limit (none in RQ 2)."""
    if RateLimitRegistry is None:
        return iter(())
    return (registry.rate_limited_key for registry in RateLimitRegistry.all(connection))


def rate_limited_key(connection: Redis, limit_key: str | None) -> str | None:
    """The sorted set that holds a job with this rate-limit key while it waits for a slot."""
    if RateLimitRegistry is None or not limit_key:
        return None
    return RateLimitRegistry(key=limit_key, connection=connection).rate_limited_key


def current_job_id(worker: Any) -> str | None:
    """RQ 2 takes an optional pipeline, RQ 3 takes nothing: call it the way both accept."""
    job_id = worker.get_current_job_id()
    return job_id.decode() if isinstance(job_id, bytes) else job_id


def schedule(queue: rq.Queue, job: Any, when: datetime, pipeline: Any) -> None:
    """Put a created job on the queue's schedule inside `pipeline`, all of it or nothing. RQ 2.x's
    ScheduledJobRegistry.schedule() ZADDs on its own connection rather than the pipeline it is given (fixed in RQ
    3.0): the id would be in the schedule before the job hash exists, and RQ's scheduler, finding no job for a due
    id, drops it (the chaos soak lost jobs so; tests/integration/test_soak_findings.py). The same steps as
    Queue.schedule_job, each on the pipeline."""
    pipeline.sadd(queue.redis_queues_keys, queue.key)
    job.set_status(JobStatus.SCHEDULED, pipeline=pipeline)
    job.save(pipeline=pipeline)
    job.cleanup(ttl=job.ttl, pipeline=pipeline)
    aware = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    pipeline.zadd(queue.scheduled_job_registry.key, {job.id: calendar.timegm(aware.utctimetuple())})
