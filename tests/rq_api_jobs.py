"""Job functions and callbacks for the RQ API tests (tests/integration/test_rq_api.py), importable by every worker.
Callbacks note each run in LEDGER_URL's ledger table: the one place both backends' workers can write to."""
from __future__ import annotations

import os
import time
from typing import Any

import psycopg
from rq import get_current_job

import migrator


def _note(key: str) -> None:
    with psycopg.connect(os.environ["LEDGER_URL"], autocommit=True) as conn:
        conn.execute("INSERT INTO migrator_test_ledger (key, pid, side) VALUES (%s, %s, %s)",
                     [key, os.getpid(), os.environ.get("MIGRATOR_TEST_SIDE")])


def report_progress(steps: int, label: str = "") -> dict[str, Any]:
    """Report progress the RQ way (get_current_job().meta + save_meta()), and say what the job saw of itself."""
    job = get_current_job()
    assert job is not None
    for step in range(1, steps + 1):
        job.meta["progress"] = step
        job.save_meta()
    mine = migrator.get_current_job()
    return {"id": job.id, "same": mine is not None and mine.id == job.id, "origin": job.origin,
            "func_name": job.func_name, "args": list(job.args), "kwargs": dict(job.kwargs),
            "meta": dict(job.meta)}


def fail(message: str = "boom") -> None:
    raise ValueError(message)


def add(a: int, b: int) -> int:
    return a + b


def on_ok(job: Any, connection: Any, result: Any, *args: Any, **kwargs: Any) -> None:
    _note(f"success:{job.id}:{result}")


def on_fail(job: Any, connection: Any, kind: type, value: BaseException, tb: Any) -> None:
    _note(f"failure:{job.id}:{kind.__name__}")


def on_stop(job: Any, connection: Any) -> None:
    _note(f"stopped:{job.id}")


def raise_in_callback(job: Any, connection: Any, result: Any, *args: Any, **kwargs: Any) -> None:
    raise RuntimeError("the success callback failed")


def slow_callback(job: Any, connection: Any, result: Any, *args: Any, **kwargs: Any) -> None:
    time.sleep(30)


def wait_for_stop(seconds: float = 60.0) -> str:
    """Block until stopped from outside (the test stops it); notes that it started."""
    job = get_current_job()
    _note(f"started:{job.id if job else '?'}")
    time.sleep(seconds)
    return "not stopped"


def note_tick() -> str:
    """A periodic job: notes its own job id (one per tick), so the test sees each tick's runs."""
    job = get_current_job()
    key = job.id if job else "?"
    _note(f"tick:{key}")
    return key
