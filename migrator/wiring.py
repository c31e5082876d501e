"""The one place that builds concrete backends (and the objects made of them) from settings."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
import importlib.util
from typing import Any, TypeVar

import rq

from adapters.base import Enqueued, JobSpec
from adapters.pg_backend import schema, supervisor
from adapters.pg_backend.periodic import PgPeriodicStore
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.playbook_state import PgPlaybookState
from adapters.pg_backend.routing_tables import RoutingTables
from adapters.pg_backend.worker_options import WorkerOptions
from adapters.rq_backend import RQBackend
from migrator import config
from migrator.config import Settings
from migrator.errors import BadInput
from migrator.periodic import schedule, ticker
from migrator.routing.cache import CachedFlags
from migrator.routing.flag_store import FlagStore
from migrator.routing.router import Router

R = TypeVar("R", bound=Router)


def postgres_backend(settings: Settings) -> PostgresBackend:
    return PostgresBackend(settings.database_url, schema=settings.schema,
                           synchronous_commit=bool(settings.extra.get("enqueue_synchronous_commit", True)),
                           pickles=settings.pickle_payloads)


def rq_backend(settings: Settings, connection: Any = None, serializer: Any = None,
               job_class: Any = None) -> RQBackend:
    """The legacy backend, on the app's own Redis connection (and serializer, job class) when it passes one, else
    with the RQ classes and serializer migrator.toml names (rq_serializer, rq_job_class, rq_queue_class)."""
    def configured(value: Any, key: str) -> Any:
        path = getattr(settings, key)
        return value if value is not None or path is None else config.import_object(path, key)
    return RQBackend(connection if connection is not None else settings.redis_url,
                     serializer=configured(serializer, "rq_serializer"),
                     queue_class=configured(None, "rq_queue_class"), job_class=configured(job_class, "rq_job_class"),
                     trusted_pickles=settings.pickle_payloads.covers if settings.pickle_payloads else None)


class _InlineQueue(rq.Queue):
    """rq.Queue(is_async=False): RQ runs each job in the calling process as it is enqueued."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["is_async"] = False
        super().__init__(*args, **kwargs)


def enqueue_inline(spec: JobSpec, connection: Any = None, serializer: Any = None, job_class: Any = None,
                   settings: Settings | None = None) -> Enqueued:
    """Queue(is_async=False): run the job now in this process through RQ's own synchronous mode (as apps' tests
    use it), whatever the routing says: no worker of either backend is involved. The record stays in Redis."""
    settings = settings or config.load()
    backend = RQBackend(connection if connection is not None else settings.redis_url, serializer=serializer,
                        queue_class=_InlineQueue, job_class=job_class)
    return backend.enqueue(spec)


def routing_tables(settings: Settings) -> RoutingTables:
    """Where routing lives: the flags, their audit log, the job names seen, the routers' presence."""
    return RoutingTables(settings.database_url, settings.schema)


def flag_store(settings: Settings) -> FlagStore:
    return FlagStore(routing_tables(settings))


def playbook_state(settings: Settings) -> PgPlaybookState:
    """Where playbook runs keep their progress and their one-runner lock."""
    return PgPlaybookState(settings.database_url, settings.schema)


def cached_flags(settings: Settings) -> CachedFlags:
    """This process's routing cache (not started: start() reads once, then refreshes in the background)."""
    return CachedFlags(flag_store(settings), settings.flag_cache_seconds)


def router_from_env(cls: type[R] = Router, redis: Any = None, fallback: bool | None = None,  # type: ignore[assignment]
                    settings: Settings | None = None, serializer: Any = None, job_class: Any = None) -> R:
    """A router from REDIS_URL, DATABASE_URL and migrator.toml (`fallback = true` there opts in); `serializer` and
    `job_class` are the app's, for the jobs routed to RQ."""
    settings = settings or config.load()
    legacy = rq_backend(settings, connection=redis, serializer=serializer, job_class=job_class)
    new = postgres_backend(settings)
    flags = cached_flags(settings).start()
    chosen = bool(settings.extra.get("fallback", False)) if fallback is None else fallback
    return cls(legacy, new, flags, chosen)


def migrate_schema(settings: Settings) -> tuple[list[str], int]:
    """Apply the new backend's pending migrations: (names applied, schema version now)."""
    return schema.migrate(settings.database_url, settings.schema), schema.latest_version()


def worker_options(settings: Settings, **given: Any) -> WorkerOptions:
    """The worker's options: what the command line gave, else the configuration's, else the defaults."""
    chosen: dict[str, Any] = {"poll_seconds": settings.poll_interval_seconds, "recovery_grace": settings.recovery_grace_seconds,
              "reap_seconds": settings.reap_interval_seconds, "queues": settings.queues}
    chosen["setup"] = settings.extra.get("worker_setup")
    chosen["exception_handlers"] = tuple(settings.extra.get("worker_exception_handlers", ()))
    chosen["pickle_payloads"] = settings.pickle_payloads  # the worker's own: never what a row claims
    chosen.update({k: v for k, v in given.items() if v is not None})
    for path in (chosen["setup"], *chosen["exception_handlers"]):
        _require_module(path)
    return WorkerOptions(**chosen)


def _require_module(path: str | None) -> None:
    """Fail at the command line, in one line, on a hook whose module does not exist (the worker processes would
    otherwise fail one after the other); the module is found, not imported: importing it is the worker's job."""
    if not path:
        return
    module = path.partition(":")[0] if ":" in path else path.rpartition(".")[0]
    try:
        found = importlib.util.find_spec(module) if module else None
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise BadInput(f"cannot find module {module!r} of {path!r}; give an import path such as app.worker:setup "
                       "and run the worker where the app's code imports")


def run_workers(settings: Settings, options: WorkerOptions, concurrency: int) -> int:
    """Run the new backend's worker processes until stopped; the exit code."""
    postgres_backend(settings).ping()  # fail fast, with one line, when Postgres is unreachable
    if options.burst:  # a burst worker ends when the queues are empty: it keeps no schedule
        return supervisor.run_workers(settings.database_url, options, concurrency, settings.schema)
    with periodic_ticker(settings):
        return supervisor.run_workers(settings.database_url, options, concurrency, settings.schema)


def periodic_store(settings: Settings) -> PgPeriodicStore:
    """Where the periodic schedules live (migrator_periodic)."""
    return PgPeriodicStore(settings.database_url, settings.schema)


@contextlib.contextmanager
def periodic_ticker(settings: Settings) -> Iterator[None]:
    """Tick the periodic schedules (migrator.toml's synced first) in a thread of this process while the workers run.
    A thread of the supervisor, not of each worker: ticking needs the router, and one per `migrator worker` is
    plenty (several tick side by side safely). Forked worker processes use none of its objects."""
    entries = schedule.from_config(settings.extra.get("periodic"))
    store = periodic_store(settings)
    router: Router = router_from_env(Router, settings=settings)
    # The config is synced by the ticker's thread: a Postgres lost between the worker's ping and this line (or
    # flapping) delays the schedules' sync, and never stops the workers from starting.
    ticking = ticker.Ticker(store, router, config=entries)
    try:
        ticking.start()
        yield
    finally:
        ticking.stop()
        router.close()
        store.close()
