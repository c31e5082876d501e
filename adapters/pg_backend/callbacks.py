"""RQ's job callbacks on the new backend, with RQ's semantics: on_success(job, connection, result) after a run that
returned, and a success callback that raises fails the job; on_failure(job, connection, type, value, traceback)
after a run that raised (its own error replaces the job's in the record); on_stopped(job, connection) when the
worker interrupts a running job. Each runs under its own timeout (rq.Callback(func, timeout=), RQ's 60 s
otherwise). `connection` is None: there is no Redis connection on this backend."""
from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from adapters.pg_backend.backend import CALLBACK_TIMEOUT

# The executor's timed call: (function, args, kwargs, seconds) -> result; raises its JobTimeout past the time.
TimedCall = Callable[[Callable[..., Any], Any, Any, int], Any]
Import = Callable[[str], Callable[..., Any]]


class CallbackTimeout(Exception):
    """A callback ran past its timeout (an Exception, as RQ's JobTimeoutException: the job fails with it)."""


def run(job: Any, callbacks: Mapping[str, Any] | None, perform: Callable[[], Any], timed: TimedCall,
        timeout_error: type[BaseException], resolve: Import) -> Any:
    """perform() the job, then its callbacks; the job's outcome is what this returns or raises."""
    if not callbacks:
        return perform()
    try:
        result = perform()
        _call(callbacks, "on_success", (job, None, result), timed, timeout_error, resolve)
        return result
    except (Exception, timeout_error):  # the job's error, its timeout, or its success callback's error
        _call(callbacks, "on_failure", (job, None, *sys.exc_info()), timed, timeout_error, resolve)
        raise
    except BaseException:  # interrupted by the worker (shutdown past its grace): RQ's "stopped"
        _call(callbacks, "on_stopped", (job, None), timed, timeout_error, resolve)
        raise


def _call(callbacks: Mapping[str, Any], name: str, args: tuple[Any, ...], timed: TimedCall,
          timeout_error: type[BaseException], resolve: Import) -> None:
    entry = callbacks.get(name)
    if not entry:
        return
    seconds = int(entry.get("timeout") or CALLBACK_TIMEOUT)
    try:
        timed(resolve(entry["func"]), args, {}, seconds)
    except timeout_error:
        raise CallbackTimeout(f"{name} callback {entry['func']} exceeded its timeout of {seconds}s") from None
