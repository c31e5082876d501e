"""RQ job hashes read as values: job name, payload and enqueue options, decoded without importing the job function.

Pure functions over the raw hash fields (bytes as Redis returns them) and the app's RQ serializer: nothing here
talks to Redis, and nothing here raises on a bad job: the problem is reported in PendingJob.error.
"""
from __future__ import annotations

import json
import pickletools
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from rq.defaults import CALLBACK_TIMEOUT

from adapters.base import JobSpec, JobState, PendingJob, RetryPolicy
from adapters.rq_backend import safe_pickle

Trust = Callable[[str], bool]  # job names whose pickled payloads are read for real (pickle_payloads)

UNKNOWN_FUNC = "<unknown>"
GONE = "job hash is gone (expired or deleted) while its id is still listed"
# The fields a count needs: the job name (inside data) and what tells a retry from a first run.
COUNT_FIELDS = ("data", "status", "started_at", "number_of_retries")
STATUS_STATES = {
    "queued": JobState.QUEUED, "created": JobState.QUEUED, "scheduled": JobState.SCHEDULED,
    "deferred": JobState.DEFERRED, "started": JobState.STARTED, "failed": JobState.FAILED,
    "stopped": JobState.FAILED, "finished": JobState.FINISHED, "canceled": JobState.CANCELED,
    # RQ 3 only: waiting for a rate-limit slot, or dependencies met and about to be pushed on the queue.
    "rate_limited": JobState.QUEUED, "ready_to_enqueue": JobState.QUEUED,
}
_PICKLE_PREFIX_OPS = frozenset({"PROTO", "FRAME", "MARK"})


def text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def call_data(data: bytes) -> bytes:
    """RQ zlib-compresses the call since 1.x and still reads uncompressed data written before."""
    try:
        return zlib.decompress(data)
    except zlib.error:
        return data


def pickled_func_name(payload: bytes) -> str | None:
    """The job name from a pickled (func_name, instance, args, kwargs) without unpickling the args, which may
    name app classes that are not importable here: it is the first string the pickle pushes."""
    try:
        for op, arg, _ in pickletools.genops(payload):
            if isinstance(arg, str) and ("UNICODE" in op.name or "STRING" in op.name):
                return str(arg)
            if op.name not in _PICKLE_PREFIX_OPS:
                return None
    except Exception:  # any malformed byte string: we only guess here, the caller reports
        return None
    return None


def func_name(data: bytes | None, serializer: Any) -> str:
    """The job name of a stored call, UNKNOWN_FUNC when it cannot be read."""
    if not data:
        return UNKNOWN_FUNC
    payload = call_data(data)
    if payload[:1] == b"\x80":  # a pickle (protocol 2+): skip unpickling args just to count
        name = pickled_func_name(payload)
        if name:
            return name
    try:
        return str(safe_pickle.serializer_loads(serializer, payload)[0])
    except Exception:
        return pickled_func_name(payload) or UNKNOWN_FUNC


def decode_call(data: bytes | None, serializer: Any, trust: Trust | None = None,
                ) -> tuple[str, tuple[Any, ...], dict[str, Any], str | None]:
    """(func, args, kwargs, error): the error says why the payload is unusable, args and kwargs then empty.
    A pickle is read without running anything (safe_pickle: app objects come back Opaque), unless its job is one
    `trust` names (pickle_payloads: carried pickled to the new backend, so read for real, as RQ's worker would)."""
    if not data:
        return UNKNOWN_FUNC, (), {}, "job hash has no payload (data field missing)"
    try:
        payload = call_data(data)
        func, instance, args, kwargs = safe_pickle.serializer_loads(serializer, payload)
        if trust is not None and safe_pickle.opaque_in((args, kwargs, instance)) and trust(str(func)):
            func, instance, args, kwargs = serializer.loads(payload)
    except Exception as exc:
        return func_name(data, serializer), (), {}, f"payload cannot be decoded: {type(exc).__name__}: {exc}"
    if instance is not None:
        return str(func), tuple(args), dict(kwargs), "job calls a method of a pickled instance, not a job function"
    return str(func), tuple(args), dict(kwargs), None


def has_run(status: str | None, started_at: str | None, number_of_retries: str | None) -> bool:
    """A job waiting again after a failed attempt: RQ 2.0 leaves started_at set, later RQ also counts retries."""
    if status not in ("queued", "scheduled"):
        return False
    return bool(started_at) or int(number_of_retries or 0) > 0


def waiting_state(where: JobState, status: str | None, started_at: str | None, retries: str | None) -> JobState:
    """The state of a job found in a queue or registry: where it sits, unless it sits there to be retried."""
    if where in (JobState.QUEUED, JobState.SCHEDULED) and has_run(status, started_at, retries):
        return JobState.RETRYING
    return where


def parse_time(value: str | None) -> datetime | None:
    """RQ writes UTC as ...Z, or naive; the adapter hands out aware datetimes only."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value else None
    except ValueError:
        return None


def _json_list(value: str | None) -> list[Any]:
    """A JSON list field of the hash; a damaged one reads as empty rather than failing the whole listing."""
    try:
        parsed = json.loads(value) if value else []
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


def retry_policy(retries_left: str | None, intervals: str | None) -> RetryPolicy | None:
    """What is left of the job's RQ Retry: the remaining attempts and their intervals."""
    left = _int(retries_left)
    if not left:
        return None
    return RetryPolicy(left, tuple(int(i) for i in _json_list(intervals)))


def decode_meta(raw: bytes | None, serializer: Any) -> tuple[dict[str, Any], str | None]:
    if not raw:
        return {}, None
    try:
        return dict(safe_pickle.serializer_loads(serializer, raw)), None
    except Exception as exc:
        return {}, f"meta cannot be decoded: {type(exc).__name__}: {exc}"


# The hash fields pending_job reads: fetched with HMGET rather than HGETALL, a third fewer replies to parse.
PENDING_FIELDS = ("data", "meta", "origin", "timeout", "result_ttl", "ttl", "failure_ttl", "retries_left",
                  "retry_intervals", "description", "enqueue_at_front", "dependency_ids", "success_callback_name",
                  "failure_callback_name", "stopped_callback_name", "success_callback_timeout",
                  "failure_callback_timeout", "stopped_callback_timeout", "status", "started_at",
                  "number_of_retries", "enqueued_at", "created_at", "allow_dependency_failures")


def pending_job(job_id: str, queue: str, where: JobState, raw: Mapping[Any, Any] | None, serializer: Any,
                run_at: datetime | None = None, trust: Trust | None = None) -> PendingJob:
    """One job of a queue or registry as a PendingJob; a missing hash or bad payload is reported, not raised."""
    if not raw:
        return pending_job_of(job_id, queue, where, None, serializer, run_at)
    fields = {text(k): v for k, v in raw.items()}
    return pending_job_of(job_id, queue, where, [fields.get(name) for name in PENDING_FIELDS], serializer, run_at,
                          trust)


def pending_job_of(job_id: str, queue: str, where: JobState, values: Sequence[bytes | None] | None, serializer: Any,
                   run_at: datetime | None = None, trust: Trust | None = None) -> PendingJob:
    """pending_job over the hash's PENDING_FIELDS values in that order (an HMGET reply, None: no hash): a transfer
    decodes thousands of jobs a second this way, without building a dict per job. Most fields are absent from
    most jobs: each helper is called only for a value that is there."""
    if values is None:
        return PendingJob(JobSpec(job_name=UNKNOWN_FUNC, queue=queue, job_id=job_id), where, error=GONE)
    data, meta_raw, *rest = values
    (origin, timeout, result_ttl, ttl, failure_ttl, retries_left, retry_intervals, description, at_front, dependency_ids,
     on_success, on_failure, on_stopped, success_timeout, failure_timeout, stopped_timeout, status, started_at,
     number_of_retries, enqueued_at, created_at, allow_failure) = [None if v is None else v if type(v) is str
                                                                   else v.decode("utf-8", "replace") for v in rest]
    func, args, kwargs, error = decode_call(data, serializer, trust)
    meta, meta_error = decode_meta(meta_raw, serializer) if meta_raw else ({}, None)
    spec = JobSpec(
        job_name=func, args=args, kwargs=kwargs, queue=origin or queue, job_id=job_id,
        timeout=_int(timeout) if timeout else None, result_ttl=_int(result_ttl) if result_ttl else None,
        ttl=_int(ttl) if ttl else None, failure_ttl=_int(failure_ttl) if failure_ttl else None,
        retry=retry_policy(retries_left, retry_intervals) if retries_left else None, meta=meta,
        description=description or None, run_at=run_at, at_front=bool(at_front and _int(at_front)),
        depends_on=tuple(str(d) for d in _json_list(dependency_ids)) if dependency_ids else (),
        allow_failure=bool(allow_failure and _int(allow_failure)), on_success=on_success or None,
        on_failure=on_failure or None, on_stopped=on_stopped or None,
        callback_timeouts=_callback_timeouts(success_timeout, failure_timeout, stopped_timeout))
    state = waiting_state(where, status, started_at, number_of_retries) if started_at or number_of_retries else where
    enqueued = parse_time(enqueued_at) or parse_time(created_at)
    return PendingJob(spec, state, enqueued, error or meta_error)


def _callback_timeouts(on_success: str | None, on_failure: str | None, on_stopped: str | None) -> dict[str, int]:
    """The timeouts RQ stored for the job's callbacks (success_callback_timeout, ...), by enqueue option."""
    if on_success is None and on_failure is None and on_stopped is None:  # most jobs: no callback at all
        return {}
    found = {"on_success": _int(on_success), "on_failure": _int(on_failure), "on_stopped": _int(on_stopped)}
    return {option: seconds for option, seconds in found.items() if seconds not in (None, CALLBACK_TIMEOUT)}
