"""Runs one claimed job in the worker's main thread: import its function, enforce job_timeout, judge the outcome."""
from __future__ import annotations

import importlib
import random
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from adapters import payload
from adapters.base import JobRefused

BACKOFF_BASE = 2.0  # seconds before the first retry when Retry gives no intervals
BACKOFF_CAP = 600.0


class JobTimeout(BaseException):
    """Raised inside a job that ran past its job_timeout. A BaseException, so `except Exception` in a job
    cannot swallow it and leave the worker stuck (RQ's JobTimeoutException is an Exception)."""


class FunctionNotFound(Exception):
    """The job's function does not import here: usually newer code enqueued it while this worker runs older code."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """One job row as the worker claimed it: everything needed to run it and judge the outcome."""

    id: str
    queue: str
    job_name: str
    args: Any
    kwargs: Any
    meta: Any
    timeout_s: int
    attempts: int
    interrupted: int
    retry_max: int
    retry_intervals: list[int]
    enqueued_at: datetime
    ttl: int | None
    priority: int
    run_at: datetime
    result_ttl: int | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What running one job came to, as the worker writes it back: success, failure (retry?) or expiry."""

    job_id: str
    ok: bool
    result: str | None = None  # JSON text
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    retry: bool = False
    delay: float = 0.0
    expired: bool = False


_functions: dict[str, Callable[..., Any]] = {}


def import_function(path: str) -> Callable[..., Any]:
    """The callable named by a dotted path (`app.jobs.send_email`, `app.jobs.Mailer.send`), cached."""
    found = _functions.get(path)
    if found is not None:
        return found
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        if callable(obj):
            _functions[path] = obj
            return obj
        break
    raise FunctionNotFound(f"{path} does not import on this worker (renamed, deleted, or enqueued by newer code "
                           "during a deploy?); it will be retried later")


def backoff(attempt: int, intervals: list[int]) -> float:
    """Seconds before retry number `attempt`: RQ's fixed intervals if given, else exponential with jitter."""
    if intervals:
        return float(intervals[min(attempt - 1, len(intervals) - 1)])
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)


def _on_alarm(signum: int, frame: Any) -> None:
    raise JobTimeout()


def install_timeout_handler() -> None:
    """Once per worker process, in its main thread: SIGALRM raises JobTimeout in the running job."""
    signal.signal(signal.SIGALRM, _on_alarm)


def _call_with_timeout(fn: Callable[..., Any], args: Any, kwargs: Any, timeout_s: int) -> Any:
    """Call `fn`, interrupting it after timeout_s with SIGALRM as RQ does (main thread only; <= 0 means none)."""
    if timeout_s <= 0 or signal.getsignal(signal.SIGALRM) is not _on_alarm:
        return fn(*args, **kwargs)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return fn(*args, **kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def perform(job: Claimed, missing_function_attempts: int) -> Outcome:
    """Run the job and say what to record. Never raises for the job's own errors."""
    if job.ttl is not None and job.ttl >= 0 and job.enqueued_at + timedelta(seconds=job.ttl) < datetime.now(timezone.utc):
        return Outcome(job.id, ok=False, expired=True)
    try:
        fn = import_function(job.job_name)
        args = payload.decode_value(job.args)
        kwargs = payload.decode_value(job.kwargs)
        result = _call_with_timeout(fn, args, kwargs, job.timeout_s)
    except FunctionNotFound as exc:
        retry = job.attempts < max(missing_function_attempts, job.retry_max + 1)
        return _failed(job, exc, retry, "")
    except JobTimeout:
        timeout = JobTimeout(f"job exceeded its timeout of {job.timeout_s}s")
        return _failed(job, timeout, job.attempts <= job.retry_max, traceback.format_exc())
    except Exception as exc:  # the job's own error: recorded, retried per its policy
        return _failed(job, exc, job.attempts <= job.retry_max, traceback.format_exc())
    try:
        encoded = payload.encode_json(result, "result")
    except JobRefused:
        encoded = payload.encode_json(repr(result))  # a result we cannot store is kept as its repr
    return Outcome(job.id, ok=True, result=encoded)


def _failed(job: Claimed, exc: BaseException, retry: bool, tb: str) -> Outcome:
    delay = backoff(job.attempts, job.retry_intervals) if retry else 0.0
    return Outcome(job.id, ok=False, error_type=type(exc).__name__, error_message=str(exc)[:2000],
                   traceback=tb or None, retry=retry, delay=delay)
