"""Named SQL: queries.sql and the numbered migrations, loaded once, identifiers filled in with psycopg.sql."""
from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from psycopg import sql

HERE = Path(__file__).parent
_NAME = re.compile(r"^-- (\w+):")

TABLES = ("jobs", "workers", "schema_version", "flags", "routing_history", "seen_jobs", "routers", "periodic")
FUNCTIONS = ("live_workers",)  # schema-qualified like the tables
BARE = ("jobs_claim_idx", "jobs_running_idx", "jobs_expiry_idx", "jobs_deferred_idx", "periodic_due_idx")


def parse_named(text: str) -> dict[str, str]:
    """Query name -> SQL, from `-- name: what it does` headers; other comment lines are dropped."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        header = _NAME.match(line)
        if header:
            current = out.setdefault(header.group(1), [])
        elif current is not None and not line.startswith("--"):
            current.append(line)
    return {name: "\n".join(lines).strip().rstrip(";") for name, lines in out.items()}


@cache
def raw_queries(filename: str = "queries.sql") -> dict[str, str]:
    """The named queries of one .sql file in this folder."""
    return parse_named((HERE / filename).read_text())


def channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel of one schema's queue."""
    return f"migrator_jobs_{schema}"


def identifiers(schema: str) -> dict[str, sql.Composable]:
    ids: dict[str, sql.Composable] = {t: sql.Identifier(schema, f"migrator_{t}") for t in TABLES}
    ids.update({f: sql.Identifier(schema, f"migrator_{f}") for f in FUNCTIONS})
    ids.update({b: sql.Identifier(f"migrator_{b}") for b in BARE})
    ids["bulk_jobs"] = sql.Identifier("migrator_bulk_jobs")  # a temporary table, in the session's own schema
    ids["channel"] = sql.Literal(channel(schema))
    ids["schema"] = sql.Identifier(schema)
    # the workers table's name as a regclass literal (for pg_get_serial_sequence), quoted by psycopg.sql
    ids["workers_name"] = sql.Literal(sql.Identifier(schema, "migrator_workers").as_string(None))
    return ids


@cache
def queries(schema: str, filename: str = "queries.sql") -> dict[str, str]:
    """Query name -> SQL with its identifiers quoted; rendered once, since composing on every call is costly
    on the worker's hot path."""
    ids = identifiers(schema)
    return {name: sql.SQL(text).format(**ids).as_string(None) for name, text in raw_queries(filename).items()}


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL text) of every migration file, in order."""
    found = []
    for path in sorted((HERE / "migrations").glob("*.sql")):
        version = int(path.name.split("_", 1)[0])
        found.append((version, path.stem, path.read_text()))
    return found


def migration_sql(text: str, schema: str) -> sql.Composed:
    return sql.SQL(text).format(**identifiers(schema))
