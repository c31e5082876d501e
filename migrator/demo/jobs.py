"""The demo's job: writes one ledger row per run, so that lost and duplicated runs can be counted."""
from __future__ import annotations

import os
import time

import psycopg

_conn: psycopg.Connection | None = None  # one connection per worker process, opened on first use


def record(key: str, work_ms: int = 5) -> str:
    """Pretend to send an email: take a little time, then write the ledger row."""
    global _conn
    time.sleep(work_ms / 1000)
    if _conn is None or _conn.closed:
        _conn = psycopg.connect(os.environ["MIGRATOR_DEMO_LEDGER_URL"], autocommit=True)
    _conn.execute("INSERT INTO demo_ledger (key, side, pid) VALUES (%s, %s, %s)",
                  [key, os.environ.get("MIGRATOR_DEMO_SIDE", "?"), os.getpid()])
    return key
