"""Job functions for the tests, importable by every worker process (RQ's and ours)."""
from __future__ import annotations

import os
import time
from typing import Any

import psycopg


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
        conn.execute("INSERT INTO migrator_test_ledger (key, pid) VALUES (%s, %s)", [key, os.getpid()])
    return key
