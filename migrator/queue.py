"""`migrator.Queue`: a drop-in for enqueuing with `rq.Queue`, and the `job` decorator with `.delay()`.

Changing `from rq import Queue` to `from migrator import Queue` is the whole app change: each enqueue asks
the routing flags where its job name goes and hands the job to that backend.
"""
from __future__ import annotations

import atexit
import functools
import threading
from dataclasses import replace
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import rq

from adapters.base import BackendName, Enqueued, JobInfo, JobSpec, JobState
from adapters.spec import OPTIONS, aware, build_spec, from_enqueue_data, parse_timeout, run_at_in
from migrator import wiring
from migrator.routing import router as routing_router



class Router(routing_router.Router):
    """The router an app uses (`from migrator import Router`): routing's Router, built from the environment."""

    @classmethod
    def from_env(cls, redis: Any = None, fallback: bool | None = None, settings: Any = None) -> "Router":
        """A router from REDIS_URL, DATABASE_URL and migrator.toml (`fallback = true` there opts in)."""
        return wiring.router_from_env(cls, redis, fallback, settings)


_routers: dict[int, Router] = {}
_routers_lock = threading.Lock()


def default_router(connection: Any = None) -> Router:
    """One router per process (per Redis connection object, when the app passes its own)."""
    key = id(connection)
    with _routers_lock:
        router = _routers.get(key)
        if router is None:
            router = _routers[key] = Router.from_env(redis=connection)
            atexit.register(router.close)  # saves the job names this process routed
        return router


class JobHandle:
    """What an enqueue returns: which backend took the job, its id, and RQ-style accessors on either backend."""

    def __init__(self, placed: Enqueued, router: routing_router.Router) -> None:
        self.placed = placed
        self._router = router

    id = property(lambda self: self.placed.job_id)
    backend = property(lambda self: self.placed.backend)
    origin = property(lambda self: self.placed.queue)
    func_name = property(lambda self: self.placed.job_name)

    def fetch(self) -> JobInfo | None:
        return self._router.fetch_job(self.placed.backend, self.placed.job_id)

    def get_status(self, refresh: bool = True) -> str | None:
        """RQ's status words: queued, scheduled, deferred, started, finished, failed, canceled."""
        info = self.fetch()
        if info is None:
            return None
        return JobState.SCHEDULED.value if info.state is JobState.RETRYING else info.state.value

    @property
    def result(self) -> Any:
        info = self.fetch()
        return info.result if info else None

    def return_value(self, refresh: bool = True) -> Any:
        return self.result

    @property
    def exc_info(self) -> str | None:
        info = self.fetch()
        if info is None or info.error_type is None:
            return None
        return info.traceback or f"{info.error_type}: {info.error_message}"

    @property
    def is_finished(self) -> bool:
        return self.get_status() == JobState.FINISHED.value

    @property
    def is_failed(self) -> bool:
        return self.get_status() == JobState.FAILED.value

    def __repr__(self) -> str:
        return f"JobHandle({self.placed.job_name} {self.placed.job_id} on {self.placed.backend.value})"


def _split_options(kwargs: dict[str, Any]) -> tuple[tuple[Any, ...] | None, dict[str, Any], dict[str, Any]]:
    """RQ's enqueue(): RQ options are taken out of **kwargs; explicit args=/kwargs= are the job's own."""
    options = {k: kwargs.pop(k) for k in list(kwargs) if k in OPTIONS or k in ("on_stopped", "repeat", "pipeline")}
    if "args" in kwargs or "kwargs" in kwargs:
        return tuple(kwargs.pop("args", None) or ()), dict(kwargs.pop("kwargs", None) or {}), {**options, **kwargs}
    return None, kwargs, options


class Queue:
    """Enqueue like `rq.Queue`; the flags choose the backend per job name."""

    def __init__(self, name: str = "default", connection: Any = None, router: routing_router.Router | None = None,
                 default_timeout: int | str | None = None, **_: Any) -> None:
        self.name = name
        self.connection = connection
        self._router = router
        self.default_timeout = default_timeout

    @property
    def router(self) -> routing_router.Router:
        if self._router is None:
            self._router = default_router(self.connection)
        return self._router

    prepare_data = staticmethod(rq.Queue.prepare_data)

    def enqueue(self, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> JobHandle:
        explicit, job_kwargs, options = _split_options(kwargs)
        return self._enqueue(f, explicit if explicit is not None else args, job_kwargs, None, options)

    def enqueue_call(self, func: Callable[..., Any] | str, args: Iterable[Any] | None = None,
                     kwargs: dict[str, Any] | None = None, timeout: int | str | None = None,
                     **options: Any) -> JobHandle:
        if timeout is not None:
            options["job_timeout"] = timeout
        return self._enqueue(func, tuple(args or ()), dict(kwargs or {}), None, options)

    def enqueue_at(self, datetime_: datetime, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> JobHandle:
        explicit, job_kwargs, options = _split_options(kwargs)
        return self._enqueue(f, explicit if explicit is not None else args, job_kwargs, aware(datetime_), options)

    def enqueue_in(self, time_delta: timedelta, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> JobHandle:
        explicit, job_kwargs, options = _split_options(kwargs)
        return self._enqueue(f, explicit if explicit is not None else args, job_kwargs, run_at_in(time_delta),
                             options)

    def enqueue_many(self, job_datas: Iterable[Any], pipeline: Any = None) -> list[JobHandle]:
        """Many `Queue.prepare_data(...)` items: one round trip per backend."""
        specs = [self._with_default_timeout(from_enqueue_data(item, self.name)) for item in job_datas]
        return [JobHandle(placed, self.router) for placed in self.router.enqueue_many(specs)]

    def _enqueue(self, f: Callable[..., Any] | str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 run_at: datetime | None, options: dict[str, Any]) -> JobHandle:
        options.pop("pipeline", None)  # each backend enqueues atomically on its own
        spec = self._with_default_timeout(build_spec(f, args, kwargs, self.name, run_at=run_at, **options))
        return JobHandle(self.router.enqueue(spec), self.router)

    def _with_default_timeout(self, spec: JobSpec) -> JobSpec:
        if spec.timeout is None and self.default_timeout is not None:
            return replace(spec, timeout=parse_timeout(self.default_timeout))
        return spec

    def __repr__(self) -> str:
        return f"migrator.Queue({self.name!r})"


def job(queue: str | Queue = "default", connection: Any = None, timeout: int | str | None = None,
        **defaults: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`rq.decorators.job` in migrator's terms: `@job("emails")` gives the function a `.delay()` that enqueues
    through the router; RQ options given to the decorator are defaults for every call."""
    if timeout is not None:
        defaults["job_timeout"] = timeout

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        target = queue if isinstance(queue, Queue) else Queue(queue, connection=connection)

        @functools.wraps(fn)
        def delay(*args: Any, **kwargs: Any) -> JobHandle:
            explicit, job_kwargs, options = _split_options(kwargs)
            merged = {**defaults, **options}
            return target._enqueue(fn, explicit if explicit is not None else args, job_kwargs, None, merged)

        fn.delay = delay  # type: ignore[attr-defined]
        return fn

    return wrap


__all__ = ["Queue", "JobHandle", "Router", "job", "default_router", "BackendName"]
