"""The new backend's worker, run as a real process (`migrator worker`), against a real Postgres."""
from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from adapters.base import JobSpec, JobState, RetryPolicy
from tests.support import ledger_counts, run_cli, spawn_cli, wait_for


def burst(pg_url: str, *args: str) -> str:
    done = run_cli("worker", "--burst", *args, DATABASE_URL=pg_url)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_burst_worker_runs_jobs_and_stores_results(backend, pg_url):
    backend.enqueue(JobSpec("tests.jobs.add", (2, 3), job_id="sum"))
    backend.enqueue(JobSpec("tests.jobs.echo", ((1, 2),), {"at": timedelta(seconds=5)}, job_id="echo"))
    burst(pg_url)
    assert backend.fetch_job("sum").result == 5
    echoed = backend.fetch_job("echo")
    assert echoed.state == JobState.FINISHED
    assert echoed.result == {"args": [(1, 2)], "kwargs": {"at": timedelta(seconds=5)}}


def test_only_the_given_queues_are_served(backend, pg_url):
    backend.enqueue(JobSpec("tests.jobs.noop", queue="a", job_id="in-a"))
    backend.enqueue(JobSpec("tests.jobs.noop", queue="b", job_id="in-b"))
    burst(pg_url, "--queues", "a")
    assert backend.fetch_job("in-a").state == JobState.FINISHED
    assert backend.fetch_job("in-b").state == JobState.QUEUED


def test_higher_priority_and_at_front_run_first(backend, pg_url, ledger_url):
    backend.enqueue(JobSpec("tests.jobs.ledger", ("low",), priority=0))
    backend.enqueue(JobSpec("tests.jobs.ledger", ("high",), priority=10))
    backend.enqueue(JobSpec("tests.jobs.ledger", ("front",), at_front=True))
    burst(pg_url, "--batch", "1")
    with psycopg.connect(ledger_url) as conn:
        order = [k for (k,) in conn.execute("SELECT key FROM migrator_test_ledger ORDER BY at")]
    assert order == ["high", "front", "low"]


def test_scheduled_job_waits_for_its_time(backend, pg_url):
    backend.enqueue(JobSpec("tests.jobs.noop", job_id="later", run_at=datetime.now(timezone.utc) + timedelta(hours=1)))
    backend.enqueue(JobSpec("tests.jobs.noop", job_id="soon", run_at=datetime.now(timezone.utc) + timedelta(seconds=1)))
    worker = spawn_cli("worker", DATABASE_URL=pg_url)
    try:
        wait_for(lambda: backend.fetch_job("soon").state == JobState.FINISHED, what="scheduled job to run")
    finally:
        worker.terminate()
        worker.wait(30)
    assert backend.fetch_job("later").state == JobState.SCHEDULED


def test_failures_are_retried_with_the_rq_policy_then_recorded(backend, pg_url):
    backend.enqueue(JobSpec("tests.jobs.boom", ("bad input",), job_id="b", retry=RetryPolicy(2, (0,))))
    burst(pg_url)
    info = backend.fetch_job("b")
    assert (info.state, info.attempts) == (JobState.FAILED, 3)
    assert (info.error_type, info.error_message) == ("ValueError", "bad input")
    assert "raise ValueError(message)" in info.traceback


def test_failed_jobs_can_be_retried_or_deleted(backend, pg_url):
    backend.enqueue(JobSpec("tests.jobs.boom", job_id="f1"))
    backend.enqueue(JobSpec("tests.jobs.boom", job_id="f2"))
    burst(pg_url)
    assert backend.retry_failed(ids=["f1"]) == 1
    assert backend.fetch_job("f1").state == JobState.QUEUED
    assert backend.delete_failed(job_name="tests.jobs.boom") == 1
    assert backend.fetch_job("f2") is None


def test_retry_waits_with_backoff(backend, pg_url):
    backend.enqueue(JobSpec("tests.jobs.boom", job_id="slow-retry", retry=RetryPolicy(1, (3600,))))
    burst(pg_url)
    info = backend.fetch_job("slow-retry")
    assert info.state == JobState.RETRYING
    [pending] = list(backend.iter_pending())
    assert pending.spec.run_at > datetime.now(timezone.utc) + timedelta(minutes=59)


def test_job_past_its_timeout_fails_and_the_worker_goes_on(backend, pg_url):
    backend.enqueue(JobSpec("tests.jobs.swallow_timeout", (30,), job_id="stuck", timeout=1))
    backend.enqueue(JobSpec("tests.jobs.add", (1, 1), job_id="after"))
    burst(pg_url)
    stuck = backend.fetch_job("stuck")
    assert (stuck.state, stuck.error_type) == (JobState.FAILED, "JobTimeout")
    assert "timeout of 1s" in stuck.error_message
    assert backend.fetch_job("after").result == 2


def test_result_ttl_zero_deletes_the_job_and_ttl_expires_waiting_jobs(backend, pg_url):
    backend.enqueue(JobSpec("tests.jobs.noop", job_id="gone", result_ttl=0))
    backend.enqueue(JobSpec("tests.jobs.noop", job_id="kept", result_ttl=-1))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        backend.enqueue(JobSpec("tests.jobs.noop", job_id="stale", ttl=5))
        conn.execute("UPDATE migrator_jobs SET enqueued_at = now() - interval '1 minute' WHERE id = 'stale'")
    burst(pg_url)
    assert backend.fetch_job("gone") is None
    assert backend.fetch_job("kept").state == JobState.FINISHED
    stale = backend.fetch_job("stale")
    assert (stale.state, stale.error_type) == (JobState.CANCELED, "Expired")


def test_missing_function_is_retried_with_backoff_then_failed(backend, pg_url):
    backend.enqueue(JobSpec("tests.jobs_v2.send_invoice", (1,), job_id="newer"))
    backend.enqueue(JobSpec("tests.jobs.add", (1, 2), job_id="fine"))
    burst(pg_url, "--missing-function-attempts", "3")
    first = backend.fetch_job("newer")
    assert first.state == JobState.RETRYING
    assert first.error_type == "FunctionNotFound"
    assert "does not import on this worker" in first.error_message
    assert backend.fetch_job("fine").result == 3  # the worker lived on
    for _ in range(2):  # spend the remaining attempts without waiting for the backoff
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE migrator_jobs SET run_at = now() WHERE id = 'newer'")
        burst(pg_url, "--missing-function-attempts", "3")
    last = backend.fetch_job("newer")
    assert (last.state, last.attempts) == (JobState.FAILED, 3)


def test_dependent_job_runs_after_its_parent(backend, pg_url, ledger_url):
    backend.enqueue(JobSpec("tests.jobs.ledger", ("parent",), job_id="p"))
    backend.enqueue(JobSpec("tests.jobs.ledger", ("child",), job_id="c", depends_on=("p",)))
    assert backend.fetch_job("c").state == JobState.DEFERRED
    burst(pg_url)
    assert ledger_counts(ledger_url) == {"parent": 1, "child": 1}
    with psycopg.connect(ledger_url) as conn:
        order = [k for (k,) in conn.execute("SELECT key FROM migrator_test_ledger ORDER BY at")]
    assert order == ["parent", "child"]


def test_sigterm_lets_the_running_job_finish_and_releases_the_rest(backend, pg_url, tmp_path):
    pid_file = tmp_path / "pids"
    backend.enqueue(JobSpec("tests.jobs.write_pid_then_sleep", (str(pid_file), 2), job_id="running"))
    backend.enqueue_many([JobSpec("tests.jobs.noop", job_id=f"waiting-{i}") for i in range(5)])
    worker = spawn_cli("worker", "--batch", "10", DATABASE_URL=pg_url)
    wait_for(lambda: pid_file.exists(), what="job to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert backend.fetch_job("running").state == JobState.FINISHED
    assert {backend.fetch_job(f"waiting-{i}").state for i in range(5)} == {JobState.QUEUED}
    assert backend.workers() == []  # the worker unregistered


def test_shutdown_grace_releases_a_job_that_runs_too_long(backend, pg_url, tmp_path):
    pid_file = tmp_path / "pids"
    backend.enqueue(JobSpec("tests.jobs.write_pid_then_sleep", (str(pid_file), 60), job_id="long"))
    worker = spawn_cli("worker", "--shutdown-grace", "1", DATABASE_URL=pg_url)
    wait_for(lambda: pid_file.exists(), what="job to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    info = backend.fetch_job("long")
    assert (info.state, info.attempts) == (JobState.QUEUED, 0)  # given back, its attempt not counted


def test_idle_worker_wakes_on_notify(backend, pg_url):
    worker = spawn_cli("worker", DATABASE_URL=pg_url)
    try:
        wait_for(lambda: [w for w in backend.workers() if w.alive], what="worker to register")
        backend.enqueue(JobSpec("tests.jobs.add", (20, 22), job_id="woken"))
        wait_for(lambda: backend.fetch_job("woken").state == JobState.FINISHED, what="job to run")
        assert backend.fetch_job("woken").result == 42
    finally:
        worker.terminate()
        worker.wait(30)


@pytest.mark.parametrize("concurrency", ["3"])
def test_concurrency_runs_jobs_in_several_processes(backend, pg_url, ledger_url, concurrency):
    backend.enqueue_many([JobSpec("tests.jobs.ledger", (f"k{i}", 0.2)) for i in range(12)])
    worker = spawn_cli("worker", "--concurrency", concurrency, "--batch", "1", DATABASE_URL=pg_url)
    try:
        wait_for(lambda: len(ledger_counts(ledger_url)) == 12, timeout=60, what="all jobs")
    finally:
        worker.terminate()
        assert worker.wait(30) == 0
    with psycopg.connect(ledger_url) as conn:
        pids = {p for (p,) in conn.execute("SELECT DISTINCT pid FROM migrator_test_ledger")}
    assert len(pids) > 1
    assert set(ledger_counts(ledger_url).values()) == {1}


def test_worker_fails_fast_on_unreachable_postgres():
    done = run_cli("worker", "--burst", DATABASE_URL="postgresql://x:pw@127.0.0.1:1/none")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: postgres is unreachable at postgresql://x:***@")
    assert "Traceback" not in done.stderr
