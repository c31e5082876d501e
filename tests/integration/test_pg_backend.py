"""The new backend's enqueue and inspection API against a real Postgres."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest
from rq import Queue

from adapters.base import BackendUnavailable, JobRefused, JobSpec, JobState, RetryPolicy
from adapters.pg_backend import schema
from adapters.pg_backend.backend import PostgresBackend
from tests import jobs


def states(backend: PostgresBackend) -> dict[tuple[str, str], int]:
    return {(c.job_name, c.state.value): c.count for c in backend.counts()}


def test_enqueue_one_stores_every_option(backend):
    spec = JobSpec("tests.jobs.add", (1, 2), {}, queue="emails", job_id="job-1", timeout=30, result_ttl=10,
                   ttl=60, failure_ttl=70, retry=RetryPolicy(3, (1, 2)), meta={"tenant": 7},
                   description="adds", priority=5)
    done = backend.enqueue(spec)
    assert (done.job_id, done.queue, done.backend.value) == ("job-1", "emails", "postgres")
    [pending] = list(backend.iter_pending())
    assert pending.spec == spec
    assert pending.state == JobState.QUEUED


def test_same_job_id_twice_is_a_noop(backend):
    backend.enqueue(JobSpec("tests.jobs.add", (1, 2), job_id="same"))
    backend.enqueue(JobSpec("tests.jobs.add", (9, 9), job_id="same"))
    [pending] = list(backend.iter_pending())
    assert pending.spec.args == (1, 2)


def test_enqueue_many_in_one_statement_skips_existing_ids(backend):
    backend.enqueue(JobSpec("tests.jobs.add", (0, 0), job_id="j-3"))
    done = backend.enqueue_many([JobSpec("tests.jobs.add", (i, i), job_id=f"j-{i}") for i in range(10)])
    assert [d.job_id for d in done] == [f"j-{i}" for i in range(10)]
    assert states(backend) == {("tests.jobs.add", "queued"): 10}
    assert backend.fetch_job("j-3") is not None
    assert [p.spec.args for p in backend.iter_pending() if p.spec.job_id == "j-3"] == [(0, 0)]


def test_enqueue_many_accepts_rq_prepare_data_items(backend):
    items = [Queue.prepare_data(jobs.add, (i, 1), job_id=f"p{i}", timeout=9) for i in range(3)]
    backend.enqueue_many(items, queue="bulk")
    found = sorted(backend.iter_pending(), key=lambda p: p.spec.job_id or "")
    assert [(p.spec.job_id, p.spec.queue, p.spec.timeout) for p in found] == [
        ("p0", "bulk", 9), ("p1", "bulk", 9), ("p2", "bulk", 9)]


def test_scheduled_job_counts_as_scheduled(backend):
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    backend.enqueue(JobSpec("tests.jobs.noop", run_at=later, job_id="later"))
    assert states(backend) == {("tests.jobs.noop", "scheduled"): 1}
    [pending] = list(backend.iter_pending())
    assert pending.spec.run_at == later


def test_naive_run_at_is_refused(backend):
    with pytest.raises(JobRefused, match="timezone-aware"):
        backend.enqueue(JobSpec("tests.jobs.noop", run_at=datetime.now()))


def test_unserializable_argument_is_refused_and_nothing_is_enqueued(backend):
    with pytest.raises(JobRefused, match=r"kwargs\['conn'\] is a builtins.object"):
        backend.enqueue(JobSpec("tests.jobs.noop", (1,), {"conn": object()}))
    with pytest.raises(JobRefused, match=r"args\[0\]"):
        backend.enqueue_many([JobSpec("tests.jobs.noop", (1,)), JobSpec("tests.jobs.noop", (object(),))])
    assert backend.counts() == []


def test_callbacks_are_stored_with_their_timeouts(backend):
    backend.enqueue(JobSpec("tests.jobs.noop", job_id="cb", on_success="tests.jobs.noop",
                            on_stopped="tests.jobs.add", callback_timeouts={"on_stopped": 5}))
    spec = backend.fetch_job("cb").spec
    assert (spec.on_success, spec.on_failure, spec.on_stopped) == ("tests.jobs.noop", None, "tests.jobs.add")
    assert spec.callback_timeouts == {"on_stopped": 5}  # RQ's default (60 s) is not spelled out
    [pending] = list(backend.iter_pending())
    assert (pending.spec.on_success, pending.spec.callback_timeouts) == ("tests.jobs.noop", spec.callback_timeouts)


def test_transactional_enqueue_follows_the_apps_transaction(backend, pg_url):
    with psycopg.connect(pg_url) as app:
        backend.enqueue(JobSpec("tests.jobs.noop", job_id="rolled-back"), conn=app)
        app.rollback()
        backend.enqueue(JobSpec("tests.jobs.noop", job_id="committed"), conn=app)
        assert backend.fetch_job("committed") is None  # not visible before the app commits
        app.commit()
    assert backend.fetch_job("rolled-back") is None
    assert backend.fetch_job("committed") is not None


def test_dependent_job_is_deferred_until_parent_exists_finished(backend):
    backend.enqueue(JobSpec("tests.jobs.noop", job_id="parent"))
    backend.enqueue(JobSpec("tests.jobs.noop", job_id="child", depends_on=("parent",)))
    assert states(backend) == {("tests.jobs.noop", "queued"): 1, ("tests.jobs.noop", "deferred"): 1}


def test_payload_types_survive_storage(backend):
    value = {"when": datetime(2026, 1, 1, tzinfo=timezone.utc), "amount": Decimal("9.99"), "ids": (1, 2)}
    backend.enqueue(JobSpec("tests.jobs.echo", (value,), job_id="typed"))
    [pending] = list(backend.iter_pending())
    assert pending.spec.args == (value,)


def test_migrate_is_idempotent_and_versioned(pg_url):
    assert schema.migrate(pg_url) == []  # the template was migrated already
    with psycopg.connect(pg_url) as conn:
        assert schema.current_version(conn, "public") == schema.latest_version()


def test_unreachable_postgres_is_a_masked_error():
    backend = PostgresBackend("postgresql://app:hunter2@127.0.0.1:1/db")
    with pytest.raises(BackendUnavailable) as err:
        backend.enqueue(JobSpec("tests.jobs.noop"))
    assert "hunter2" not in str(err.value)
    assert "postgresql://app:***@127.0.0.1:1/db" in str(err.value)


def test_transactional_bulk_enqueue_follows_the_apps_transaction(backend, pg_url):
    with psycopg.connect(pg_url) as app:
        backend.enqueue_many([JobSpec("tests.jobs.noop", job_id=f"gone-{i}") for i in range(3)], conn=app)
        app.rollback()
        backend.enqueue_many([JobSpec("tests.jobs.noop", job_id=f"kept-{i}") for i in range(3)], conn=app)
        backend.enqueue_many([JobSpec("tests.jobs.noop", job_id=f"more-{i}") for i in range(2)], conn=app)
        app.commit()
    assert sorted(p.spec.job_id for p in backend.iter_pending()) == [
        "kept-0", "kept-1", "kept-2", "more-0", "more-1"]


def test_opt_in_asynchronous_commit_applies_to_enqueue_sessions_only(pg_url):
    fast = PostgresBackend(pg_url, synchronous_commit=False)
    with fast.db.connection() as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "off"
    fast.enqueue(JobSpec("tests.jobs.noop", job_id="async-commit"))
    assert PostgresBackend(pg_url).fetch_job("async-commit") is not None
    with psycopg.connect(pg_url) as plain, PostgresBackend(pg_url).db.connection() as conn:
        server_default = plain.execute("SHOW synchronous_commit").fetchone()[0]
        conn.execute("SET application_name = 'probe'")  # the default backend's sessions keep the server's setting
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == server_default
        assert "synchronous_commit" not in (conn.info.options or "")
    fast.close()
