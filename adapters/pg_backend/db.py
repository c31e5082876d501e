"""Connections to Postgres and the one narrow execute interface; psycopg errors become BackendUnavailable here."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from adapters.base import BackendError, BackendUnavailable, SchemaMissing
from adapters.pg_backend import sql as named
from adapters.urls import mask_url as masked

# Server-side keepalives for sessions that hold a worker's liveness lock: if the worker's machine vanishes,
# Postgres ends the session (and so frees the lock) after about idle + interval * count seconds.
KEEPALIVE_SETTINGS = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}


def unavailable(url: str, exc: BaseException, in_doubt: bool = False) -> BackendError:
    """An OperationalError as what it means: a server that cannot be reached, or (SQLSTATE class 40) a
    transaction the server rolled back (a deadlock, a serialization failure), which running again settles."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, psycopg.errors.TransactionRollback):
        return BackendError(f"postgres at {masked(url)} rolled a transaction back ({detail[:200]}); nothing of it "
                            "was kept: run the command again")
    return BackendUnavailable("postgres", masked(url), detail[:200], in_doubt=in_doubt)


@contextlib.contextmanager
def translated(url: str, tables: str) -> Iterator[None]:
    """psycopg's errors as the adapter errors migrator knows, for statements on `tables` ("the routing tables"):
    unreachable -> BackendUnavailable, not migrated -> SchemaMissing, any other refusal -> BackendError."""
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        raise SchemaMissing("postgres", masked(url), tables) from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise unavailable(url, exc) from exc
    except psycopg.Error as exc:
        raise BackendError(f"postgres at {masked(url)} refused a statement on {tables}: {exc}") from exc


def connect(url: str, *, autocommit: bool = True, application_name: str = "migrator",
            keepalive: bool = False, timeout: float = 5.0) -> psycopg.Connection[Any]:
    options = " ".join(f"-c {k}={v}" for k, v in KEEPALIVE_SETTINGS.items()) if keepalive else None
    try:
        return psycopg.connect(url, autocommit=autocommit, application_name=application_name,
                               connect_timeout=max(1, int(timeout)), options=options or "")
    except psycopg.OperationalError as exc:
        raise unavailable(url, exc) from exc


def close_quietly(conn: psycopg.Connection[Any] | None) -> None:
    """Close a connection that may already be broken: the caller is giving up on it, and the server ends the
    session by itself once the socket is gone, so a failure here changes nothing."""
    if conn is None:
        return
    try:
        conn.close()
    except psycopg.Error:
        pass


class Database:
    """A pool of connections to one database and schema, and the named queries of that schema (one .sql file of
    adapters/pg_backend/sql: queries.sql for the job queue, routing.sql for the routing tables)."""

    def __init__(self, url: str, schema: str = "public", pool_size: int = 4, synchronous_commit: bool = True,
                 filename: str = "queries.sql") -> None:
        self.url = url
        self.schema = schema
        self.synchronous_commit = synchronous_commit
        self.queries = named.queries(schema, filename)
        self.channel = named.channel(schema)
        self._pool: ConnectionPool | None = None
        self._pool_size = pool_size

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            self._pool = ConnectionPool(self.url, min_size=1, max_size=self._pool_size, open=False,
                                        kwargs=self._connect_kwargs(),
                                        reconnect_timeout=30, timeout=5)
            try:
                self._pool.open(wait=True, timeout=5)
            except PoolTimeout as exc:
                failed, self._pool = self._pool, None
                failed.close(timeout=0)  # else its workers keep reconnecting in the background, for nobody
                raise unavailable(self.url, exc) from exc
        return self._pool

    def _connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"autocommit": True, "application_name": "migrator"}
        if not self.synchronous_commit:  # opt-in: see PostgresBackend
            kwargs["options"] = "-c synchronous_commit=off"
        return kwargs

    @contextlib.contextmanager
    def connection(self, conn: psycopg.Connection[Any] | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection, or the caller's own (transactional enqueue), errors translated."""
        if conn is not None:
            yield conn
            return
        sent = False  # past the pool: a statement may have reached the server (and committed) before the break
        try:
            with self.pool.connection() as pooled:
                sent = True
                yield pooled
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise unavailable(self.url, exc, in_doubt=sent) from exc
        except psycopg.errors.UndefinedTable as exc:  # a database nobody migrated: say what to run
            raise SchemaMissing("postgres", masked(self.url), "the job tables") from exc

    def execute(self, name: str, params: dict[str, Any] | None = None,
                conn: psycopg.Connection[Any] | None = None) -> int:
        with self.connection(conn) as c:
            return c.execute(self.queries[name], params, prepare=True).rowcount

    def fetch_one(self, name: str, params: dict[str, Any] | None = None,
                  conn: psycopg.Connection[Any] | None = None) -> tuple[Any, ...] | None:
        with self.connection(conn) as c:
            return c.cursor(row_factory=tuple_row).execute(self.queries[name], params, prepare=True).fetchone()

    def fetch_all(self, name: str, params: dict[str, Any] | None = None,
                  conn: psycopg.Connection[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connection(conn) as c:
            return c.cursor(row_factory=tuple_row).execute(self.queries[name], params, prepare=True).fetchall()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
