"""The one place that builds concrete backends (and the objects made of them) from settings."""
from __future__ import annotations

from typing import Any, TypeVar

from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.playbook_state import PgPlaybookState
from adapters.rq_backend import RQBackend
from migrator import config
from migrator.config import Settings
from migrator.routing.cache import CachedFlags
from migrator.routing.router import Router

R = TypeVar("R", bound=Router)


def postgres_backend(settings: Settings) -> PostgresBackend:
    return PostgresBackend(settings.database_url, schema=settings.schema,
                           synchronous_commit=bool(settings.extra.get("enqueue_synchronous_commit", True)))


def rq_backend(settings: Settings, connection: Any = None) -> RQBackend:
    """The legacy backend, on the app's own Redis connection when it passes one."""
    return RQBackend(connection if connection is not None else settings.redis_url)


def playbook_state(settings: Settings) -> PgPlaybookState:
    """Where playbook runs keep their progress and their one-runner lock."""
    return PgPlaybookState(settings.database_url, settings.schema)


def router_from_env(cls: type[R] = Router, redis: Any = None, fallback: bool | None = None,  # type: ignore[assignment]
                    settings: Settings | None = None) -> R:
    """A router from REDIS_URL, DATABASE_URL and migrator.toml (`fallback = true` there opts in)."""
    settings = settings or config.load()
    legacy = rq_backend(settings, connection=redis)
    new = postgres_backend(settings)
    flags = CachedFlags.from_settings(settings).start()
    chosen = bool(settings.extra.get("fallback", False)) if fallback is None else fallback
    return cls(legacy, new, flags, chosen)
