"""Bulk enqueue straight into the jobs table (generated ids) keeps every option as a single enqueue does."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest

from adapters.base import JobRefused, JobSpec, JobState, RetryPolicy
from adapters.pg_backend import bulk, sql
from adapters.pg_backend.backend import PostgresBackend

AWKWARD = "tab\there, new\nline, cr\r, back\\slash, \\N, quote \" and 'é €'"


def variety() -> list[JobSpec]:
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    return [
        JobSpec("tests.jobs.add", (1, 2), queue="bulk-a"),
        JobSpec("tests.jobs.noop", queue="bulk-a"),
        JobSpec("tests.jobs.echo", (AWKWARD, Decimal("1.5"), b"\x00\t", (1, "\\")), {"k": AWKWARD}, queue="bulk-a",
                meta={"note": AWKWARD}, description=AWKWARD, priority=3, timeout=30, result_ttl=0, ttl=90,
                failure_ttl=5, retry=RetryPolicy(2, (1, 10))),
        JobSpec("tests.jobs.noop", queue="bulk-b", run_at=later),
        JobSpec("tests.jobs.noop", queue="bulk-b", at_front=True, on_success="tests.jobs.noop",
                callback_timeouts={"on_success": 7}),
        JobSpec("tests.jobs.noop", queue="bulk-c", run_at=later),
    ]


def test_bulk_jobs_read_back_as_enqueued_one_by_one(backend: PostgresBackend):
    specs = variety()
    done = backend.enqueue_many(specs)
    assert [(d.queue, d.job_name) for d in done] == [(s.queue, s.job_name) for s in specs]
    for d in done:
        assert str(uuid.UUID(d.job_id)) == d.job_id and uuid.UUID(d.job_id).version == 4
    one_by_one = [backend.enqueue(s) for s in specs]
    for many, one in zip(done, one_by_one):
        a, b = backend.fetch_job(many.job_id), backend.fetch_job(one.job_id)
        assert a is not None and b is not None
        assert a.spec is not None and b.spec is not None
        assert a.state == b.state
        assert (a.spec.args, a.spec.kwargs, a.spec.meta, a.spec.description) == (
            b.spec.args, b.spec.kwargs, b.spec.meta, b.spec.description)
        assert (a.spec.timeout, a.spec.result_ttl, a.spec.ttl, a.spec.failure_ttl, a.spec.retry, a.spec.priority,
                a.spec.at_front, a.spec.run_at, a.spec.on_success, a.spec.callback_timeouts) == (
            b.spec.timeout, b.spec.result_ttl, b.spec.ttl, b.spec.failure_ttl, b.spec.retry, b.spec.priority,
            b.spec.at_front, b.spec.run_at, b.spec.on_success, b.spec.callback_timeouts)
    assert [backend.fetch_job(d.job_id).state for d in done] == [  # type: ignore[union-attr]
        JobState.QUEUED, JobState.QUEUED, JobState.QUEUED, JobState.SCHEDULED, JobState.QUEUED, JobState.SCHEDULED]


def test_bulk_enqueue_wakes_each_queue_with_a_runnable_job_once(backend: PostgresBackend, pg_url: str):
    with psycopg.connect(pg_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {sql.channel('public')}")
        backend.enqueue_many(variety() + variety())
        got = sorted(n.payload for n in listener.notifies(timeout=1.0))
    assert got == ["bulk-a", "bulk-b"]  # bulk-c holds scheduled jobs only


def test_bulk_enqueue_refused_whole_when_one_job_cannot_be_carried(backend: PostgresBackend):
    with pytest.raises(JobRefused, match=r"args\[0\]"):
        backend.enqueue_many([JobSpec("tests.jobs.noop", (1,)), JobSpec("tests.jobs.noop", (object(),))])
    with pytest.raises(JobRefused, match="timezone-aware"):
        backend.enqueue_many([JobSpec("tests.jobs.noop"), JobSpec("tests.jobs.noop", run_at=datetime(2030, 1, 1))])
    assert backend.counts() == []


def test_generated_ids_are_uuid4_text():
    ids = bulk.new_job_ids(500)
    assert len(set(ids)) == 500
    assert all(str(uuid.UUID(i)) == i and uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122
               for i in ids)
