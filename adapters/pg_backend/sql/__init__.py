"""Named SQL: queries.sql and the numbered migrations, loaded once, identifiers filled in with psycopg.sql."""
from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from psycopg import sql

HERE = Path(__file__).parent
_NAME = re.compile(r"^-- (\w+):", re.M)

TABLES = ("jobs", "workers", "schema_version", "flags", "routing_history", "seen_jobs")
BARE = ("jobs_claim_idx", "jobs_running_idx", "jobs_expiry_idx", "jobs_deferred_idx")


@cache
def raw_queries() -> dict[str, str]:
    """Query name -> SQL text, from the `-- name: what it does` headers of queries.sql."""
    text = (HERE / "queries.sql").read_text()
    starts = [(m.start(), m.group(1)) for m in _NAME.finditer(text)]
    out: dict[str, str] = {}
    for (pos, name), nxt in zip(starts, [*[s for s, _ in starts[1:]], len(text)]):
        body = "\n".join(line for line in text[pos:nxt].splitlines() if not line.startswith("--")).strip()
        out[name] = body.rstrip(";")
    return out


def channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel of one schema's queue."""
    return f"migrator_jobs_{schema}"


def identifiers(schema: str) -> dict[str, sql.Composable]:
    ids: dict[str, sql.Composable] = {t: sql.Identifier(schema, f"migrator_{t}") for t in TABLES}
    ids.update({b: sql.Identifier(f"migrator_{b}") for b in BARE})
    ids["notify_fn"] = sql.Identifier(schema, "migrator_notify_jobs")
    ids["channel"] = sql.Literal(channel(schema))
    ids["schema"] = sql.Identifier(schema)
    return ids


@cache
def queries(schema: str) -> dict[str, str]:
    """Query name -> SQL with its identifiers quoted; rendered once, since composing on every call is costly
    on the worker's hot path."""
    ids = identifiers(schema)
    return {name: sql.SQL(text).format(**ids).as_string(None) for name, text in raw_queries().items()}


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL text) of every migration file, in order."""
    found = []
    for path in sorted((HERE / "migrations").glob("*.sql")):
        version = int(path.name.split("_", 1)[0])
        found.append((version, path.stem, path.read_text()))
    return found


def migration_sql(text: str, schema: str) -> sql.Composed:
    return sql.SQL(text).format(**identifiers(schema))
