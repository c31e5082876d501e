"""Versioned, idempotent schema migrations; safe when two processes migrate at once."""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from adapters.pg_backend import db
from adapters.pg_backend import sql as named

# Every migrating process takes this transaction-level lock first, so concurrent `db migrate` runs queue up
# instead of racing on CREATE statements; it is released at commit or when the session dies.
MIGRATE_LOCK = 0x6D696772  # "migr"


def current_version(conn: psycopg.Connection[Any], schema: str) -> int:
    table = sql.Identifier(schema, "migrator_schema_version").as_string(conn)
    exists = conn.execute("SELECT to_regclass(%s)", [table]).fetchone()
    if not exists or exists[0] is None:
        return 0
    row = conn.execute(named.queries(schema)["schema_version"]).fetchone()
    return int(row[0]) if row else 0


def migrate(url: str, schema: str = "public") -> list[str]:
    """Apply every migration newer than the database's version; returns the names applied."""
    applied: list[str] = []
    conn = db.connect(url, autocommit=False)
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATE_LOCK])
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY, name text NOT NULL,"
                                 " applied_at timestamptz NOT NULL DEFAULT now())")
                         .format(sql.Identifier(schema, "migrator_schema_version")))
            have = current_version(conn, schema)
            for version, name, text in named.migrations():
                if version <= have:
                    continue
                conn.execute(named.migration_sql(text, schema))
                conn.execute(sql.SQL("INSERT INTO {} (version, name) VALUES (%s, %s)")
                             .format(sql.Identifier(schema, "migrator_schema_version")), [version, name])
                applied.append(name)
    except psycopg.OperationalError as exc:
        raise db.unavailable(url, exc) from exc
    finally:
        conn.close()
    return applied


def latest_version() -> int:
    return max(v for v, _, _ in named.migrations())
