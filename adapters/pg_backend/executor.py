"""Runs one claimed job in the worker's main thread: import its function, enforce job_timeout, judge the outcome."""
from __future__ import annotations

import random
import signal
import time
import traceback
from _signal import getsignal as raw_getsignal  # signal.getsignal without its enum lookup (~3 us a job)
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from adapters import payload, spec
from adapters.base import JobRefused, JobSpec, PickleOptIn, RetryPolicy
from adapters.pg_backend import callbacks, current_job, hooks, pickled
from adapters.pg_backend.backend import callback_fields
from adapters.urls import mask_urls_in

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
    callbacks: dict[str, Any] | None = None  # {"on_success": {"func": ..., "timeout": ...}, ...}
    description: str | None = None
    failure_ttl: int | None = None
    pickled: bytes | None = None  # pickled (args, kwargs) of an opted-in job (pickle_payloads); args hold a marker

    def job_spec(self, args: Any, kwargs: Any, meta: Any) -> JobSpec:
        """What the job was enqueued with (its decoded payload given), for the running job's handle."""
        retry = RetryPolicy(self.retry_max, tuple(self.retry_intervals)) if self.retry_max else None
        return JobSpec(job_name=self.job_name, args=tuple(args), kwargs=kwargs, queue=self.queue, job_id=self.id,
                       timeout=self.timeout_s, result_ttl=self.result_ttl, ttl=self.ttl, failure_ttl=self.failure_ttl,
                       retry=retry, meta=meta or {}, description=self.description, priority=self.priority,
                       **(callback_fields(self.callbacks) if self.callbacks else {}))  # most jobs have none


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
    exception: BaseException | None = None  # the job's own, for the worker's log record (never stored)
    deletes: bool = False  # a success whose row goes at once (result_ttl 0)


_functions: dict[str, Callable[..., Any]] = {}


def import_function(path: str) -> Callable[..., Any]:
    """The callable named by a dotted path (`app.jobs.send_email`, `app.jobs.Mailer.send`), cached."""
    found = _functions.get(path)
    if found is not None:
        return found
    found = spec.resolve(path)
    if callable(found):
        _functions[path] = found
        return found
    raise FunctionNotFound(f"{path} does not import on this worker (renamed, deleted, or enqueued by newer code "
                           "during a deploy?); it will be retried later")


def backoff(attempt: int, intervals: list[int]) -> float:
    """Seconds before retry number `attempt`: RQ's fixed intervals if given, else exponential with jitter."""
    if intervals:
        return float(intervals[min(attempt - 1, len(intervals) - 1)])
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)


_timed = False  # a timed call is running: SIGALRM is its timeout
_armed_until = 0.0  # time.monotonic() at which the timer last armed goes off (left armed: see _call_with_timeout)


def _on_alarm(signum: int, frame: Any) -> None:
    if _timed:  # else a timer an earlier call left armed: there is nothing to interrupt
        raise JobTimeout()


def install_timeout_handler() -> None:
    """Once per worker process, in its main thread: SIGALRM raises JobTimeout in the running job."""
    signal.signal(signal.SIGALRM, _on_alarm)


def _call_with_timeout(fn: Callable[..., Any], args: Any, kwargs: Any, timeout_s: int) -> Any:
    """Call `fn`, interrupting it after timeout_s with SIGALRM as RQ does (main thread only; <= 0 means none).
    The timer is armed for each call but not disarmed after it, one system call a job instead of two: the next
    call arms it anew, _on_alarm ignores it between calls, and a call without a timeout disarms one still pending."""
    global _timed, _armed_until
    if raw_getsignal(signal.SIGALRM) is not _on_alarm:
        return fn(*args, **kwargs)
    if timeout_s <= 0:
        if _armed_until > time.monotonic():
            signal.setitimer(signal.ITIMER_REAL, 0)
            _armed_until = 0.0
        return fn(*args, **kwargs)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    _armed_until = time.monotonic() + timeout_s
    _timed = True
    try:
        return fn(*args, **kwargs)
    finally:
        _timed = False


class ResultNotStored(Exception):
    """The job ran, but its return value cannot be stored by the new backend (not a JSON-taggable value)."""


def perform(job: Claimed, missing_function_attempts: int, handlers: Sequence[hooks.Handler] = (),
            pickles: PickleOptIn = PickleOptIn()) -> Outcome:
    """Run the job and say what to record. Never raises for the job's own errors; they go through the app's
    exception handlers (RQ's chain) before they are recorded. A pickled payload is loaded only for a job that
    `pickles` (this worker's own pickle_payloads) names; any other fails for good, unread."""
    if job.ttl is not None and job.ttl >= 0 and job.enqueued_at + timedelta(seconds=job.ttl) < datetime.now(timezone.utc):
        return Outcome(job.id, ok=False, expired=True)
    handle: Any = None  # the job as handlers see it, once it is decoded
    try:
        fn = import_function(job.job_name)
        if job.pickled is None:
            args, kwargs = payload.decode_value(job.args), payload.decode_value(job.kwargs)
        else:
            args, kwargs = pickled.load(job.job_name, job.pickled, pickles)
        handle = current_job.handle(job.job_spec(args, kwargs, payload.decode_value(job.meta)), job.attempts,
                                    job.enqueued_at)
        with current_job.Running(handle):  # rq.get_current_job() inside the job and its callbacks
            result = callbacks.run(handle, job.callbacks, lambda: _call_with_timeout(fn, args, kwargs, job.timeout_s),
                                   _call_with_timeout, JobTimeout, import_function)
    except FunctionNotFound as exc:
        retry = job.attempts < max(missing_function_attempts, job.retry_max + 1)
        return _failed(job, exc, retry, "")
    except pickled.NotOptedIn as exc:  # never retried: no run of this worker would read it
        return _failed(job, exc, False, "")
    except JobTimeout:
        timeout = JobTimeout(f"job exceeded its timeout of {job.timeout_s}s")
        hooks.handle_exception(handlers, handle, timeout)
        return _failed(job, timeout, job.attempts <= job.retry_max, traceback.format_exc())
    except Exception as exc:  # the job's own error: recorded, retried per its policy
        hooks.handle_exception(handlers, handle, exc)
        return _failed(job, exc, job.attempts <= job.retry_max, traceback.format_exc())
    try:
        encoded = "null" if result is None else payload.encode_json(result, "result")  # most jobs return None
    except JobRefused as exc:
        # Never a silent repr: the job ran (its side effects happened, so no retry), the result is lost, say why.
        lost = ResultNotStored(f"the job ran but its result cannot be stored by the new backend: {exc}; return "
                               "JSON types, datetime, Decimal, UUID, bytes, tuple or set (or store it yourself)")
        return _failed(job, lost, False, "")
    return Outcome(job.id, ok=True, result=encoded, deletes=job.result_ttl == 0)


def _failed(job: Claimed, exc: BaseException, retry: bool, tb: str) -> Outcome:
    delay = backoff(job.attempts, job.retry_intervals) if retry else 0.0
    # Stored with the job and shown by `jobs show`: a job's exception may quote a connection string.
    return Outcome(job.id, ok=False, error_type=type(exc).__name__, error_message=mask_urls_in(str(exc)[:2000]),
                   traceback=mask_urls_in(tb) or None, retry=retry, delay=delay, exception=exc)
