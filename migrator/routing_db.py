"""Named SQL of the routing tables (adapters/pg_backend/sql/routing.sql) and connections to them."""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from adapters.pg_backend import db
from adapters.pg_backend import sql as named
from migrator.errors import BadInput

ROUTING_SQL = named.HERE / "routing.sql"
_HEADER = re.compile(r"^-- (\w+):.*$")


def parse_named(text: str) -> dict[str, str]:
    """Query name -> SQL, from `-- name: what it does` headers; other comment lines are dropped."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            current = out.setdefault(header.group(1), [])
        elif current is not None and not line.startswith("--"):
            current.append(line)
    return {name: "\n".join(lines).strip().rstrip(";") for name, lines in out.items()}


@cache
def queries(schema: str) -> dict[str, sql.Composed]:
    ids = named.identifiers(schema)
    return {name: sql.SQL(text).format(**ids) for name, text in parse_named(ROUTING_SQL.read_text()).items()}


def missing_tables(url: str) -> BadInput:
    return BadInput(f"the routing tables are missing in {db.masked(url)}; run `migrator db migrate` first")


@contextlib.contextmanager
def connection(url: str, timeout: float = 5.0) -> Iterator[psycopg.Connection[Any]]:
    """A short-lived autocommit connection, its errors translated into the toolkit's one-line errors."""
    conn = db.connect(url, application_name="migrator-routing", timeout=timeout)
    try:
        with translated(url):
            yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def translated(url: str) -> Iterator[None]:
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        raise missing_tables(url) from exc
    except psycopg.OperationalError as exc:
        raise db.unavailable(url, exc) from exc


def fetch_all(conn: psycopg.Connection[Any], schema: str, name: str,
              params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(queries(schema)[name], params)
        return cur.fetchall() if cur.description else []
