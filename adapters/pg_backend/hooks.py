"""The app's own code around the new backend's worker: a set-up function run once per worker process before any
job (`django.setup()`, a Flask app context), and exception handlers with RQ's signature, run when a job fails.

Referenced by import path (`app.worker:setup`), as `rq worker --exception-handler` takes them, so that the same
handler serves both backends during a migration.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from adapters.base import BackendError

log = logging.getLogger("migrator.worker")
Handler = Callable[[Any, type[BaseException], BaseException, TracebackType | None], Any]


class HookNotFound(BackendError):
    """A set-up function or exception handler named in the worker's options does not import."""


def load(path: str, what: str) -> Callable[..., Any]:
    """The callable an import path names: `pkg.mod:func` or `pkg.mod.func`."""
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise HookNotFound(f"{what} {path!r} does not import ({exc}); give an import path such as "
                           "app.worker:setup") from exc
    if not callable(found):
        raise HookNotFound(f"{what} {path!r} is not callable")
    return found  # type: ignore[no-any-return]


def run_setup(path: str | None) -> None:
    """Once per worker process, before its first job: what `rq worker -c settings` or a custom worker class did."""
    if path:
        load(path, "worker set-up")()


def load_handlers(paths: Sequence[str]) -> list[Handler]:
    return [load(p, "exception handler") for p in paths]


def handle_exception(handlers: Sequence[Handler], job: Any, exc: BaseException) -> None:
    """RQ's chain: each handler gets (job, exc_type, exc_value, traceback); one returning False stops the chain
    (None means go on). A handler that raises is logged and the chain goes on: it must never fail the worker."""
    for handler in handlers:
        try:
            fallthrough = handler(job, type(exc), exc, exc.__traceback__)
        except Exception:
            log.exception("exception handler %r failed", handler)
            continue
        if fallthrough is False:
            return
