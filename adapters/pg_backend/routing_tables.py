"""The routing tables in Postgres (flags, audit log, job names seen, routers' presence) behind
adapters.base.RoutingStore: routing.sql's named queries run through db.Database, psycopg errors translated here."""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from adapters.base import BackendError, HistoryRow, RouterRow, SchemaMissing
from adapters.pg_backend import db

TABLES = "the routing tables"  # what SchemaMissing names
# Seconds: a router row unheard of this long belongs to a process that exited without closing (SIGKILL, an RQ work
# horse's os._exit): long gone from live_routers, which look back seconds, not hours.
PRUNE_AFTER = 3600.0


class RoutingTables:
    """The routing store of one database and schema. Each call is one short connection (the CLI makes a few
    calls and exits); a process that reads routing all the time holds a session() instead."""

    def __init__(self, url: str, schema: str = "public", timeout: float = 5.0) -> None:
        self.url, self.schema, self.timeout = url, schema, timeout
        self.location = db.masked(url)
        # Only its named queries and execute calls are used, always on our own connections: its pool never opens.
        self.db = db.Database(url, schema, pool_size=1, filename="routing.sql")

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with db.translated(self.url, TABLES):
            conn = db.connect(self.url, application_name="migrator-routing", timeout=self.timeout)
            try:
                yield conn
            finally:
                conn.close()

    def read_flags(self, prefix: str) -> list[tuple[str, bytes]]:
        with self._connection() as conn:
            return read_flags(self.db, conn, prefix)

    @contextlib.contextmanager
    def edit(self, lock_key: int) -> Iterator["Edit"]:
        """One transaction under the advisory lock `lock_key`: flipper items are read-modify-write, so two edits
        without the lock could each write back a state missing the other's change."""
        with self._connection() as conn, conn.transaction():
            self.db.execute("lock_routing", {"key": lock_key}, conn=conn)
            yield Edit(self.db, conn)

    def history(self, limit: int) -> list[HistoryRow]:
        with self._connection() as conn:
            rows = self.db.fetch_all("list_history", {"limit": limit}, conn=conn)
        return [HistoryRow(int(i), at, actor, action, job, detail or {}, before, after)
                for i, at, actor, action, job, detail, before, after in rows]

    def record_seen(self, names: Iterable[str]) -> None:
        with self._connection() as conn:
            record_seen(self.db, conn, names)

    def seen_jobs(self) -> list[str]:
        with self._connection() as conn:
            return [name for (name,) in self.db.fetch_all("seen_jobs", conn=conn)]

    def routers(self, within_seconds: float) -> list[RouterRow]:
        with self._connection() as conn:
            rows = self.db.fetch_all("live_routers", {"within": float(within_seconds)}, conn=conn)
        return [RouterRow(host, int(pid), int(version), first, last) for host, pid, version, first, last in rows]

    def session(self, timeout: float = 5.0) -> "CacheSession":
        return CacheSession(self, timeout)


class Edit:
    """The statements of one routing edit, on the transaction RoutingTables.edit holds."""

    def __init__(self, database: db.Database, conn: psycopg.Connection[Any]) -> None:
        self.db, self.conn = database, conn

    def read_flags(self, prefix: str) -> list[tuple[str, bytes]]:
        return read_flags(self.db, self.conn, prefix)

    def upsert_flag(self, name: str, item: bytes) -> None:
        self.db.execute("upsert_flag", {"name": name, "item": item}, conn=self.conn)

    def delete_flags(self, names: Iterable[str]) -> None:
        self.db.execute("delete_flags", {"names": list(names)}, conn=self.conn)

    def insert_history(self, *, actor: str, action: str, job_name: str | None, detail: Mapping[str, Any],
                       before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[int, datetime]:
        row = self.db.fetch_one("insert_history", {
            "actor": actor, "action": action, "job": job_name, "detail": Jsonb(dict(detail)),
            "before": Jsonb(dict(before)), "after": Jsonb(dict(after))}, conn=self.conn)
        assert row is not None  # INSERT ... RETURNING always returns the row
        return int(row[0]), row[1]


class CacheSession:
    """The one connection of a process's flag cache: opened on first use; after an error it is closed, and the
    next call opens a new one (the cache keeps its last known routing meanwhile)."""

    def __init__(self, tables: RoutingTables, timeout: float) -> None:
        self.tables, self.timeout = tables, timeout
        self._conn: psycopg.Connection[Any] | None = None
        self._pruned = False
        # Connections inherited across fork(): the parent still uses their socket. Closing one here, or letting
        # garbage collection close it, would end the parent's session, so they stay referenced, never closed.
        self._inherited: list[psycopg.Connection[Any]] = []

    @contextlib.contextmanager
    def _use(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with db.translated(self.tables.url, TABLES):
                if self._conn is None or self._conn.closed:
                    self._conn = db.connect(self.tables.url, application_name="migrator-flags",
                                            timeout=self.timeout)
                yield self._conn
        except SchemaMissing:
            raise  # the connection is fine (autocommit): keep it
        except BackendError:
            self.close()
            raise

    def read_flags(self, prefix: str) -> list[tuple[str, bytes]]:
        with self._use() as conn:
            return read_flags(self.tables.db, conn, prefix)

    def record_seen(self, names: Iterable[str]) -> None:
        with self._use() as conn:
            record_seen(self.tables.db, conn, names)

    def report_router(self, token: str, host: str, pid: int, version: int) -> None:
        with self._use() as conn:
            if not self._pruned:  # once per process: cheap, and a table of dead routers never grows for long
                self.tables.db.execute("prune_routers", {"seconds": PRUNE_AFTER}, conn=conn)
                self._pruned = True
            self.tables.db.execute("report_router", {"token": token, "host": host, "pid": pid,
                                                     "version": version}, conn=conn)

    def remove_router(self, token: str) -> None:
        with self._use() as conn:
            self.tables.db.execute("remove_router", {"token": token}, conn=conn)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        db.close_quietly(conn)

    def after_fork(self) -> None:
        if self._conn is not None:
            self._inherited.append(self._conn)
        self._conn, self._pruned = None, False


def read_flags(database: db.Database, conn: psycopg.Connection[Any], prefix: str) -> list[tuple[str, bytes]]:
    return [(name, bytes(item)) for name, item in database.fetch_all("read_flags", {"prefix": prefix}, conn=conn)]


def record_seen(database: db.Database, conn: psycopg.Connection[Any], names: Iterable[str]) -> None:
    """Upsert job names in one statement, sorted so that concurrent batches lock rows in one order."""
    batch = sorted(set(names))
    if batch:
        database.execute("record_seen", {"names": batch}, conn=conn)
