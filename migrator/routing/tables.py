"""Named SQL of the routing tables (adapters/pg_backend/sql/routing.sql) and connections to them."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from adapters.pg_backend import db
from adapters.pg_backend import sql as named
from migrator.errors import BadInput

def queries(schema: str) -> dict[str, str]:
    return named.queries(schema, "routing.sql")


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
