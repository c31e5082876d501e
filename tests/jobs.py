"""Job functions for the tests, importable by every worker process (RQ's and ours)."""
from __future__ import annotations

import os
import time
from typing import Any

import psycopg
from rq import get_current_job


def noop(*args: Any, **kwargs: Any) -> None:
    return None


def add(a: int, b: int) -> int:
    return a + b


def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


def boom(message: str = "boom") -> None:
    raise ValueError(message)


def sleep_for(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


def ledger(key: str, sleep: float = 0.0) -> str:
    """Write one ledger row per run into LEDGER_URL's migrator_test_ledger; a unique key catches double runs
    (the second insert of a key fails, so it shows up as a failed job and a duplicate count)."""
    if sleep:
        time.sleep(sleep)
    with psycopg.connect(os.environ["LEDGER_URL"], autocommit=True) as conn:
        conn.execute("INSERT INTO migrator_test_ledger (key, pid, side) VALUES (%s, %s, %s)",
                     [key, os.getpid(), os.environ.get("MIGRATOR_TEST_SIDE")])
    return key


def ledger_a(key: str) -> str:
    return ledger(key)


def ledger_b(key: str) -> str:
    return ledger(key)


def ledger_c(key: str) -> str:
    return ledger(key)


def ledger_d(key: str) -> str:
    return ledger(key)


def swallow_timeout(seconds: float) -> str:
    """A job that tries to swallow every Exception; the worker's timeout must still stop it."""
    try:
        time.sleep(seconds)
    except Exception:
        return "swallowed"
    return "slept"


def write_pid_then_sleep(path: str, seconds: float) -> str:
    """Tell the test which process runs it, then block (so the test can kill that process mid-job)."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return "done"


def ledger_with_pid(key: str, path: str, sleep: float) -> str:
    """Record the run, say which process runs it, then block: a run interrupted mid-job leaves a ledger row."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return ledger(key, sleep)


def note_success(job: Any, connection: Any, result: Any, *args: Any, **kwargs: Any) -> None:
    """on_success callback for the RQ adapter tests: records the job id in a Redis list the test reads."""
    connection.rpush("tests:succeeded", job.id)


def note_failure(job: Any, connection: Any, *exc_info: Any, **kwargs: Any) -> None:
    """on_failure callback for the RQ adapter tests."""
    connection.rpush("tests:failed", job.id)


def block_until_released(key: str, timeout: float = 120.0) -> str:
    """Hold the worker (the job stays started) until the test pushes to `key`: no sleeping, no timing."""
    job = get_current_job()
    assert job is not None, "block_until_released runs only under an RQ worker"
    if job.connection.blpop([key], timeout=timeout) is None:
        raise TimeoutError(f"nobody released {key}")
    return "released"


class Opaque:
    """A value RQ pickles but a JSON payload cannot carry (transfer to postgres refuses it)."""

    def __init__(self, value: int = 0) -> None:
        self.value = value


_ledger_conn: Any = None


def ledger_reused(key: str) -> str:
    """ledger() on one connection per worker process, so that thousands of runs stay cheap."""
    global _ledger_conn
    if _ledger_conn is None or _ledger_conn.closed:
        _ledger_conn = psycopg.connect(os.environ["LEDGER_URL"], autocommit=True)
    _ledger_conn.execute("INSERT INTO migrator_test_ledger (key, pid, side) VALUES (%s, %s, %s)",
                         [key, os.getpid(), os.environ.get("MIGRATOR_TEST_SIDE")])
    return key


def leak_dsn(url: str) -> None:
    """Fails with a message and traceback that quote a connection string with its password."""
    raise ConnectionError(f"could not reach {url}")


SETUP_MARK = "MIGRATOR_TEST_SETUP_DONE"


def worker_setup() -> None:
    """A worker set-up hook (what django.setup() is to a Django app): marks the process as set up."""
    os.environ[SETUP_MARK] = str(os.getpid())


def needs_setup() -> str:
    """Fails unless the worker ran its set-up hook in this very process before the job."""
    if os.environ.get(SETUP_MARK) != str(os.getpid()):
        raise RuntimeError("the worker's set-up hook did not run in this process")
    return "set up"


def record_failure(job, exc_type, exc_value, tb):  # type: ignore[no-untyped-def]
    """An RQ-style exception handler: writes what it was given to the ledger, and lets the chain go on."""
    ledger(f"handled:{job.id}:{exc_type.__name__}:{exc_value}")


def stop_the_chain(job, exc_type, exc_value, tb):  # type: ignore[no-untyped-def]
    return False


def unstorable_result() -> object:
    """Returns a value the new backend cannot store."""
    return object()
