"""`migrator.Queue`: a drop-in for `rq.Queue`, and the `job` decorator with `.delay()`.

Changing `from rq import Queue` to `from migrator import Queue` is the whole app change: each enqueue asks
the routing flags where its job name goes and hands the job to that backend; what it returns is RQ's own Job
(routed to RQ) or a migrator.Job with RQ's Job API (routed to Postgres).
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import rq
from rq.job import Job as RQJob

from adapters.base import DEFAULT_TIMEOUT, BackendName, DuplicateJob, InvalidOption, JobSpec
from adapters.spec import DELAY_OPTIONS, ENQUEUE_OPTIONS, aware, build_spec, from_enqueue_data, parse_timeout, run_at_in
from migrator import wiring
from migrator.app_router import Router, default_router
from migrator.job import Job, find, handle
from migrator.routing import router as routing_router

def _split_options(args: tuple[Any, ...], kwargs: dict[str, Any], names: frozenset[str] = ENQUEUE_OPTIONS
                   ) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
    """RQ's enqueue(): exactly the names RQ takes out of **kwargs are options (`timeout` and `priority` stay the
    job's own, as with RQ); explicit args=/kwargs= are the job's own (and then no positional arguments may be
    given, as RQ asserts)."""
    options = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
    if "args" in kwargs or "kwargs" in kwargs:
        if args:
            raise InvalidOption("Extra positional arguments cannot be used when using explicit args and kwargs")
        return tuple(kwargs.pop("args", None) or ()), dict(kwargs.pop("kwargs", None) or {}), {**options, **kwargs}
    return args, kwargs, options


class Queue:
    """rq.Queue's API; the flags choose the backend per job name. Counting and listing (len, count, job_ids,
    get_jobs, empty, fetch_job) answer for both backends: RQ's queue of that name and the new backend's."""

    def __init__(self, name: str = "default", connection: Any = None, router: routing_router.Router | None = None,
                 default_timeout: int | str | None = None, is_async: bool = True, job_class: Any = None,
                 serializer: Any = None, result_ttl: int | str | None = None,
                 death_penalty_class: Any = None) -> None:
        """RQ's Queue options: `default_timeout` and `result_ttl` are defaults for its jobs on both backends;
        `is_async=False` runs each job at once in this process through RQ's own synchronous mode; `serializer` and
        `job_class` apply to jobs routed to RQ (the new backend stores tagged JSON, docs/backend.md "Payloads",
        and hands out migrator.Job). `death_penalty_class` is refused: migrator's worker enforces timeouts itself."""
        if death_penalty_class is not None:
            raise TypeError("migrator.Queue does not take death_penalty_class: RQ workers use their own, and "
                            "`migrator worker` enforces job_timeout with SIGALRM; remove the argument")
        if job_class is not None and not (isinstance(job_class, type) and issubclass(job_class, RQJob)):
            raise TypeError(f"job_class must be a subclass of rq.job.Job, not {job_class!r}")
        self.name = name
        self.connection = connection
        self._router = router
        self.default_timeout = default_timeout
        self.is_async = is_async
        self.job_class = job_class
        self.serializer = serializer
        self.result_ttl = parse_timeout(result_ttl, "result_ttl")
        self._defaults = parse_timeout(default_timeout, "default_timeout"), self.result_ttl

    @property
    def router(self) -> routing_router.Router:
        if self._router is None:
            self._router = default_router(self.connection, self.serializer, self.job_class)
        return self._router

    prepare_data = staticmethod(rq.Queue.prepare_data)

    @staticmethod
    @contextlib.contextmanager
    def transaction(connection: Any) -> Iterator[None]:
        """Transactional enqueue, Postgres's gift: inside `with Queue.transaction(conn):` (conn: the app's psycopg
        connection to the new backend's database, in a transaction the app commits), jobs routed to the new backend
        are written on `conn` and exist only if the app's transaction commits. A job that routes to RQ there is
        refused (Redis is not part of the transaction): flip it, or enqueue after the commit."""
        token = routing_router.APP_TRANSACTION.set(connection)
        try:
            yield
        finally:
            routing_router.APP_TRANSACTION.reset(token)

    # -- enqueueing ------------------------------------------------------------------------------------------
    def enqueue(self, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> RQJob:
        job_args, job_kwargs, options = _split_options(args, kwargs)
        return self._enqueue(f, job_args, job_kwargs, None, options)

    def enqueue_call(self, func: Callable[..., Any] | str, args: Iterable[Any] | None = None,
                     kwargs: dict[str, Any] | None = None, timeout: int | str | None = None,
                     **options: Any) -> RQJob:
        if timeout is not None:
            options["job_timeout"] = timeout
        return self._enqueue(func, tuple(args or ()), dict(kwargs or {}), None, options)

    def enqueue_at(self, datetime_: datetime, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> RQJob:
        job_args, job_kwargs, options = _split_options(args, kwargs)
        return self._enqueue(f, job_args, job_kwargs, aware(datetime_), options)

    def enqueue_in(self, time_delta: timedelta, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> RQJob:
        job_args, job_kwargs, options = _split_options(args, kwargs)
        return self._enqueue(f, job_args, job_kwargs, run_at_in(time_delta), options)

    def enqueue_many(self, job_datas: Iterable[Any], pipeline: Any = None) -> list[RQJob]:
        """Many `Queue.prepare_data(...)` items: one round trip per backend."""
        specs = [self._with_defaults(from_enqueue_data(item, self.name)) for item in job_datas]
        if not self.is_async:
            return [self._inline(spec) for spec in specs]
        return [handle(self.router, placed, spec) for placed, spec in zip(self.router.enqueue_many(specs), specs)]

    def _enqueue(self, f: Callable[..., Any] | str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 run_at: datetime | None, options: dict[str, Any]) -> RQJob:
        options.pop("pipeline", None)  # each backend enqueues atomically on its own
        spec = self._with_defaults(build_spec(f, args, kwargs, self.name, run_at=run_at, **options))
        if not self.is_async:
            return self._inline(spec)
        if spec.unique and find(self.router, spec.job_id or "") is not None:
            # the id is taken on either backend (each backend's own check closes the race within it)
            raise DuplicateJob(f"Job {spec.job_id} already exists")
        return handle(self.router, self.router.enqueue(spec), spec)

    def _inline(self, spec: JobSpec) -> RQJob:
        placed = wiring.enqueue_inline(spec, self.connection, self.serializer, self.job_class)
        return handle(self.router, placed, spec)

    def _with_defaults(self, spec: JobSpec) -> JobSpec:
        timeout, result_ttl = self._defaults
        if (spec.timeout is None and timeout is not None) or (spec.result_ttl is None and result_ttl is not None):
            return replace(spec, timeout=spec.timeout if spec.timeout is not None else timeout,
                           result_ttl=spec.result_ttl if spec.result_ttl is not None else result_ttl)
        return spec

    # -- reading and emptying: both backends -----------------------------------------------------------------
    def fetch_job(self, job_id: str) -> RQJob | None:
        """The job with this id if it belongs to this queue, from either backend (RQ's Job or a migrator.Job)."""
        found = find(self.router, job_id)
        return found if found is not None and found.origin == self.name else None

    @property
    def count(self) -> int:
        """Runnable jobs waiting in this queue on both backends (not scheduled, deferred or started), as RQ's."""
        return sum(backend.queued_count(self.name) for backend in self.router.backends.values())

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return True  # a Queue object is never falsy, as rq.Queue (whose __len__ would make an empty one so)

    def get_job_ids(self, offset: int = 0, length: int = -1) -> list[str]:
        """Ids of the runnable jobs: RQ's queue first, in its order, then the new backend's, in theirs."""
        ids = [job_id for name in (BackendName.RQ, BackendName.POSTGRES)
               for job_id in self.router.backends[name].queued_job_ids(self.name)]
        return ids[offset:] if length < 0 else ids[offset:offset + length]

    @property
    def job_ids(self) -> list[str]:
        return self.get_job_ids()

    def get_jobs(self, offset: int = 0, length: int = -1) -> list[RQJob]:
        """The runnable jobs, as get_job_ids orders them (a job gone in between is left out)."""
        found = (find(self.router, job_id) for job_id in self.get_job_ids(offset, length))
        return [job for job in found if job is not None]

    @property
    def jobs(self) -> list[RQJob]:
        return self.get_jobs()

    def is_empty(self) -> bool:
        return self.count == 0

    def empty(self) -> int:
        """Delete the runnable jobs of this queue on both backends (RQ's empty()); how many."""
        return sum(backend.empty_queue(self.name) for backend in self.router.backends.values())

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
        def delay(*args: Any, **kwargs: Any) -> RQJob:
            # As RQ's decorator: depends_on, job_id and at_front per call; every other keyword is the job's own.
            options = {k: kwargs.pop(k) for k in list(kwargs) if k in DELAY_OPTIONS and kwargs[k] is not None}
            return target._enqueue(fn, args, kwargs, None, {**defaults, **options})

        fn.delay = delay  # type: ignore[attr-defined]
        fn.enqueue = delay  # type: ignore[attr-defined]  # RQ 2's name for it too
        return fn

    return wrap


__all__ = ["Queue", "Job", "Router", "job", "default_router", "BackendName", "DEFAULT_TIMEOUT"]
