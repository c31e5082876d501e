"""The one place that builds concrete backends from settings."""
from __future__ import annotations

from adapters.pg_backend.backend import PostgresBackend
from migrator.config import Settings


def postgres_backend(settings: Settings) -> PostgresBackend:
    return PostgresBackend(settings.database_url, schema=str(settings.extra.get("schema", "public")))
