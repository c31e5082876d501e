"""The demo's jobs: each pretends to do its work, then writes one ledger row per run, so that lost and
duplicated runs can be counted. Distinct functions, because routing is per job name."""
from __future__ import annotations

import os
import time

import psycopg

_conn: psycopg.Connection | None = None  # one connection per worker process, opened on first use


def record(key: str, work_ms: float = 5) -> str:
    global _conn
    time.sleep(work_ms / 1000)
    if _conn is None or _conn.closed:
        _conn = psycopg.connect(os.environ["MIGRATOR_DEMO_LEDGER_URL"], autocommit=True)
    _conn.execute("INSERT INTO demo_ledger (key, side, pid) VALUES (%s, %s, %s)",
                  [key, os.environ.get("MIGRATOR_DEMO_SIDE", "?"), os.getpid()])
    return key


def send_email(key: str) -> str:
    return record(key)


def charge_card(key: str) -> str:
    return record(key, 8)


def call_partner(key: str) -> str:
    return record(key, 12)


def resize_image(key: str) -> str:
    return record(key, 3)


def sync_crm(key: str) -> str:
    return record(key)


def build_report(key: str) -> str:
    """A long job: the demo kills the worker running it, in the middle of its work."""
    return record(key, 3000)


def send_reminder(key: str) -> str:
    """Enqueued for later (enqueue_in), so some jobs wait in the schedule when the switch happens."""
    return record(key)


JOBS = [send_email, charge_card, call_partner, resize_image, sync_crm]
