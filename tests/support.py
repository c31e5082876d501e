"""Helpers the tests import: run the CLI and workers as real processes, wait for a condition, read the ledger
that tests.jobs writes, clone the migrated template database. Fixtures live in conftest; helpers live here."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg
from rq import SimpleWorker

from migrator.localservers import LocalPostgres

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "migrator_template"
LEDGER_TABLE = ("CREATE TABLE migrator_test_ledger (key text NOT NULL, pid integer, side text,"
                " at timestamptz DEFAULT clock_timestamp())")
_counter = itertools.count()
T = TypeVar("T")


def clone_database(server: LocalPostgres) -> str:
    """A new database cloned from the migrated template; its name is unique within this pytest process."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    return name


def drop_database(server: LocalPostgres, name: str) -> None:
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """SIGTERM every process first, then wait for each: they shut down side by side."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout)


class QuietSimpleWorker(SimpleWorker):
    """RQ's SimpleWorker, in-process, without the pubsub thread that listens for `rq` commands (shutdown,
    kill-horse), which the tests never send. RQ's own thread waits up to 60 s in redis-py's get_message
    (sleep_time=60) while unsubscribe joins it for 1 s only, so it outlives the test: the leak check fails it."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


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


def wait_for(predicate: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.05,
             what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy, and return that; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
