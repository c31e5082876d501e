"""Taking one not-started job out of RQ (for transfer) and putting one failed job back, without racing workers.

A removal is a WATCH/MULTI transaction on the job hash and on the one list or sorted set that holds it: if a
worker pops the job or the scheduler moves it meanwhile, the transaction aborts and we look again.
"""
from __future__ import annotations

from collections.abc import Callable

import rq
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError
from rq.exceptions import InvalidJobOperation, NoSuchJobError

from adapters.rq_backend import compat, decode

ATTEMPTS = 5  # each retry follows a concurrent change of this very job: a few settle it
QueueFactory = Callable[[str], rq.Queue]


def holder_of(connection: Redis, queue: rq.Queue, status: str | None, limit_key: str | None) -> tuple[str, bool] | None:
    """(key, is_list) of what holds a job in this status while it has not started; None once it has."""
    ready = compat.ready_registry(queue)
    keys: dict[str | None, tuple[str | None, bool]] = {
        "queued": (queue.key, True),
        "scheduled": (queue.scheduled_job_registry.key, False),
        "deferred": (queue.deferred_job_registry.key, False),
        "ready_to_enqueue": (ready.key if ready is not None else None, False),
        "rate_limited": (compat.rate_limited_key(connection, limit_key), False),
    }
    key, is_list = keys.get(status, (None, False))
    return (key, is_list) if key else None


def remove_pending(connection: Redis, make_queue: QueueFactory, job_class: type[rq.job.Job], job_id: str) -> bool:
    """Delete one job that no worker has taken; False when it started, ended or is gone (then it is left alone)."""
    for _ in range(ATTEMPTS):
        try:
            return _remove_once(connection, make_queue, job_class, job_id)
        except WatchError:
            continue
    return False


def _remove_once(connection: Redis, make_queue: QueueFactory, job_class: type[rq.job.Job], job_id: str) -> bool:
    job = job_class(job_id, connection=connection)
    with connection.pipeline() as pipe:
        pipe.watch(job.key)
        fields = pipe.hmget(job.key, ["status", "origin", "rate_limit_key"])
        status, origin, limit_key = (decode.text(v) for v in fields)
        where = holder_of(connection, make_queue(origin), status, limit_key) if origin else None
        if where is None or not _holds(pipe, *where, job_id):
            return False
        key, is_list = where
        pipe.multi()
        pipe.lrem(key, 0, job_id) if is_list else pipe.zrem(key, job_id)
        pipe.delete(job.key, job.dependents_key, job.dependencies_key)
        pipe.execute()
    return True


def _holds(pipe: Pipeline, key: str, is_list: bool, job_id: str) -> bool:
    """Watch the holder, then check the job is still in it: a worker that popped it owns it now."""
    pipe.watch(key)
    if is_list:
        return pipe.lpos(key, job_id) is not None  # Redis >= 6.0.6
    return pipe.zscore(key, job_id) is not None


def requeue_failed(connection: Redis, make_queue: QueueFactory, job_class: type[rq.job.Job], job_id: str) -> bool:
    """Put one failed job back on its queue through RQ's FailedJobRegistry; False if it is not a failed job."""
    origin = decode.text(connection.hget(job_class.key_for(job_id), "origin"))
    if not origin:
        return False
    try:
        make_queue(origin).failed_job_registry.requeue(job_id)
    except (InvalidJobOperation, NoSuchJobError):
        return False
    return True
