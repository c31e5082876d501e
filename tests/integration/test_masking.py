"""Passwords never shown: a job's exception that quotes a connection string is stored, shown and logged masked."""
from __future__ import annotations

from pathlib import Path

import psycopg

from adapters.base import JobSpec
from adapters.urls import mask_urls_in
from tests.support import run_cli

SECRET_URL = "postgresql://app:hunter2@db.internal:5432/prod"


def test_mask_urls_in_text() -> None:
    text = f"boom: {SECRET_URL} and redis://:s3cret@cache:6379/0 but http://example.com/a:b@c stays"
    masked = mask_urls_in(text)
    assert "hunter2" not in masked and "s3cret" not in masked
    assert "postgresql://app:***@db.internal:5432/prod" in masked and "redis://:***@cache:6379/0" in masked


def test_failed_job_error_and_traceback_stored_and_logged_masked(backend, pg_url: str, tmp_path: Path) -> None:
    backend.enqueue(JobSpec("tests.jobs.leak_dsn", (SECRET_URL,), job_id="leaky"))
    worker = run_cli("worker", "--burst", DATABASE_URL=pg_url)
    assert worker.returncode == 0, worker.stderr
    assert "hunter2" not in worker.stdout + worker.stderr
    assert "could not reach postgresql://app:***@db.internal" in worker.stderr  # the worker's log line
    with psycopg.connect(pg_url) as conn:
        message, tb = conn.execute("SELECT error_message, traceback FROM migrator_jobs WHERE id = 'leaky'").fetchone()
    assert "hunter2" not in message + tb and "app:***@db.internal" in tb
    shown = run_cli("jobs", "show", "leaky", "--json", DATABASE_URL=pg_url)
    assert shown.returncode == 0 and "hunter2" not in shown.stdout and "***" in shown.stdout
