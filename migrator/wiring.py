"""The one place that builds concrete backends from settings."""
from __future__ import annotations

from typing import Any

from adapters.pg_backend.backend import PostgresBackend
from adapters.rq_backend import RQBackend
from migrator.config import Settings


def postgres_backend(settings: Settings) -> PostgresBackend:
    return PostgresBackend(settings.database_url, schema=settings.schema,
                           synchronous_commit=bool(settings.extra.get("enqueue_synchronous_commit", True)))


def rq_backend(settings: Settings, connection: Any = None) -> RQBackend:
    """The legacy backend, on the app's own Redis connection when it passes one."""
    return RQBackend(connection if connection is not None else settings.redis_url)
