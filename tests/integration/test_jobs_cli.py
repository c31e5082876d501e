"""`migrator jobs ...` as an operator runs it, on real failed and finished jobs made by a real worker."""
from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from adapters.base import JobSpec, JobState
from tests.support import run_cli, spawn_cli, wait_for

JOB_KEYS = {"id", "backend", "state", "queue", "job", "attempts", "enqueued_at", "started_at", "finished_at",
            "worker", "result", "error_type", "error_message", "traceback"}


def jobs(pg_url: str, *args: str) -> tuple[int, str, str]:
    done = run_cli("jobs", *args, DATABASE_URL=pg_url)
    return done.returncode, done.stdout, done.stderr


def burst(pg_url: str) -> None:
    done = run_cli("worker", "--burst", DATABASE_URL=pg_url)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def ran(backend, pg_url):
    """Two failed jobs (boom-1, boom-2) and one finished one (sum), run by a real burst worker."""
    backend.enqueue(JobSpec("tests.jobs.boom", ("kaput",), job_id="boom-1"))
    backend.enqueue(JobSpec("tests.jobs.boom", job_id="boom-2"))
    backend.enqueue(JobSpec("tests.jobs.add", (2, 3), job_id="sum"))
    burst(pg_url)
    assert backend.fetch_job("boom-1").state == JobState.FAILED
    return backend


def one_error_line(stderr: str) -> str:
    assert stderr.count("\n") == 1, stderr
    return stderr.strip()


# -- show ----------------------------------------------------------------------------------------------------
def test_show_a_failed_job(ran, pg_url):
    code, out, _ = jobs(pg_url, "show", "boom-1")
    assert code == 0
    assert "failed" in out and "tests.jobs.boom" in out and "ValueError: kaput" in out
    assert "Traceback" in out and 'raise ValueError(message)' in out


def test_show_json_of_a_failed_and_a_finished_job(ran, pg_url):
    code, out, _ = jobs(pg_url, "show", "boom-1", "--json")
    assert code == 0
    failed = json.loads(out)
    assert set(failed) == JOB_KEYS
    assert (failed["id"], failed["state"], failed["queue"], failed["job"]) == ("boom-1", "failed", "default",
                                                                              "tests.jobs.boom")
    assert failed["attempts"] == 1 and failed["worker"] is None
    assert (failed["error_type"], failed["error_message"]) == ("ValueError", "kaput")
    assert "raise ValueError" in failed["traceback"]
    assert failed["enqueued_at"] and failed["started_at"] and failed["finished_at"]

    code, out, _ = jobs(pg_url, "show", "sum", "--json")
    finished = json.loads(out)
    assert code == 0 and finished["state"] == "finished" and finished["result"] == 5
    assert finished["error_type"] is None and finished["traceback"] is None


def test_show_a_queued_job_has_no_times_yet(backend, pg_url):
    backend.enqueue(JobSpec("tests.jobs.add", (1, 1), queue="emails", job_id="waiting"))
    shown = json.loads(jobs(pg_url, "show", "waiting", "--json")[1])
    assert shown["state"] == "queued" and shown["queue"] == "emails" and shown["started_at"] is None


def test_show_an_unknown_id_is_one_line_exit_1(pg_url):
    code, out, err = jobs(pg_url, "show", "no-such-job")
    assert code == 1 and out == ""
    assert one_error_line(err) == "error: no job no-such-job on the new backend"


# -- counts --------------------------------------------------------------------------------------------------
def test_counts_per_queue_job_and_state(ran, pg_url):
    ran.enqueue(JobSpec("tests.jobs.add", (1, 2), queue="emails"))
    code, out, _ = jobs(pg_url, "counts", "--json")
    assert code == 0
    assert json.loads(out) == [
        {"queue": "default", "job": "tests.jobs.add", "state": "finished", "count": 1},
        {"queue": "default", "job": "tests.jobs.boom", "state": "failed", "count": 2},
        {"queue": "emails", "job": "tests.jobs.add", "state": "queued", "count": 1}]

    code, out, _ = jobs(pg_url, "counts", "--queue", "default", "--job", "tests.jobs.boom", "--json")
    assert json.loads(out) == [{"queue": "default", "job": "tests.jobs.boom", "state": "failed", "count": 2}]

    code, out, _ = jobs(pg_url, "counts", "--queue", "emails")
    assert code == 0
    assert "emails" in out and "queued" in out and "default" not in out and "failed" not in out


def test_counts_of_an_empty_backend(pg_url):
    code, out, _ = jobs(pg_url, "counts")
    assert code == 0 and out.strip() == "no jobs on the new backend"
    assert json.loads(jobs(pg_url, "counts", "--json")[1]) == []


# -- retry and delete-failed ---------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["retry", "delete-failed"])
@pytest.mark.parametrize("selectors", [(), ("--id", "boom-1", "--all-failed"),
                                       ("--job", "tests.jobs.boom", "--all-failed")])
def test_exactly_one_selector_is_required(ran, pg_url, command, selectors):
    code, out, err = jobs(pg_url, command, *selectors)
    assert code == 2 and out == ""
    assert "choose exactly one of --id JOB_ID (repeatable), --job NAME or --all-failed" in one_error_line(err)
    assert ran.fetch_job("boom-1").state == JobState.FAILED  # nothing touched


def test_retry_by_id_puts_only_that_job_back(ran, pg_url):
    code, out, _ = jobs(pg_url, "retry", "--id", "boom-1")
    assert code == 0 and out.strip() == "retried 1 failed job"
    retried = ran.fetch_job("boom-1")
    assert retried.state == JobState.QUEUED and retried.attempts == 0
    assert ran.fetch_job("boom-2").state == JobState.FAILED
    burst(pg_url)  # it really runs again, and fails again
    assert ran.fetch_job("boom-1").state == JobState.FAILED


def test_retry_reports_ids_that_are_not_failed(ran, pg_url):
    code, out, _ = jobs(pg_url, "retry", "--id", "boom-2", "--id", "sum", "--id", "nope")
    assert code == 0
    assert out.strip() == "retried 1 failed job (2 given ids are not failed jobs on the new backend)"
    assert ran.fetch_job("sum").state == JobState.FINISHED


@pytest.mark.parametrize("selector", [("--job", "tests.jobs.boom"), ("--all-failed",)])
def test_retry_by_job_name_or_all_json(ran, pg_url, selector):
    code, out, _ = jobs(pg_url, "retry", *selector, "--json")
    assert code == 0 and json.loads(out) == {"retried": 2}
    assert {c.state for c in ran.counts(job_name="tests.jobs.boom")} == {JobState.QUEUED}
    assert json.loads(jobs(pg_url, "retry", *selector, "--json")[1]) == {"retried": 0}


def test_delete_failed_by_job_name_leaves_other_jobs(ran, pg_url):
    ran.enqueue(JobSpec("tests.jobs.add", (1, 2), job_id="waiting"))
    code, out, _ = jobs(pg_url, "delete-failed", "--job", "tests.jobs.boom")
    assert code == 0 and out.strip() == "deleted 2 failed jobs"
    assert ran.fetch_job("boom-1") is None and ran.fetch_job("boom-2") is None
    assert ran.fetch_job("sum") is not None and ran.fetch_job("waiting") is not None


def test_delete_failed_by_id_and_all(ran, pg_url):
    code, out, _ = jobs(pg_url, "delete-failed", "--id", "boom-2", "--id", "sum")
    assert code == 0 and out.strip() == "deleted 1 failed job (1 given id is not a failed job on the new backend)"
    code, out, _ = jobs(pg_url, "delete-failed", "--all-failed", "--json")
    assert code == 0 and json.loads(out) == {"deleted": 1}
    assert [(c.job_name, c.state) for c in ran.counts()] == [("tests.jobs.add", JobState.FINISHED)]


# -- purge ---------------------------------------------------------------------------------------------------
def test_purge_deletes_only_finished_jobs_older_than_the_retention(backend, pg_url):
    backend.enqueue(JobSpec("tests.jobs.add", (1, 1), job_id="old"))
    backend.enqueue(JobSpec("tests.jobs.add", (2, 2), job_id="recent"))
    backend.enqueue(JobSpec("tests.jobs.boom", job_id="old-failure"))
    burst(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE migrator_jobs SET finished_at = now() - interval '8 days'"
                     " WHERE id IN ('old', 'old-failure')")
    code, out, _ = jobs(pg_url, "purge", "--older-than", "7d")
    assert code == 0 and out.strip() == "purged 1 finished job older than 7d"
    assert backend.fetch_job("old") is None
    assert backend.fetch_job("recent") is not None and backend.fetch_job("old-failure") is not None

    code, out, _ = jobs(pg_url, "purge", "--older-than", "3600", "--json")
    assert code == 0 and json.loads(out) == {"purged": 0, "older_than_seconds": 3600}


@pytest.mark.parametrize("duration", ["soon", "7x", "-1d", "infd", ""])
def test_purge_with_a_bad_duration_is_one_line_exit_2(pg_url, duration):
    code, out, err = jobs(pg_url, "purge", "--older-than", duration)
    assert code == 2 and out == ""
    assert "--older-than must be a duration such as 7d, 12h, 30m or 3600" in one_error_line(err)


def test_purge_needs_older_than(pg_url):
    code, _, err = jobs(pg_url, "purge")
    assert code == 2 and "--older-than" in err


# -- workers -------------------------------------------------------------------------------------------------
def test_workers_lists_a_live_worker(backend, pg_url):
    assert json.loads(jobs(pg_url, "workers", "--json")[1]) == []
    worker = spawn_cli("worker", "--queues", "default,emails", DATABASE_URL=pg_url)
    try:
        wait_for(lambda: [w for w in backend.workers() if w.alive], what="worker")
        code, out, _ = jobs(pg_url, "workers", "--json")
        human = run_cli("jobs", "workers", DATABASE_URL=pg_url, COLUMNS="200").stdout
    finally:
        worker.terminate()
        worker.wait(30)
    assert code == 0
    [listed] = json.loads(out)
    assert set(listed) == {"id", "backend", "name", "host", "pid", "queues", "state", "current_job_id", "started_at",
                           "heartbeat_at", "running", "alive", "detail", "runs_scheduler"}
    assert listed["queues"] == ["default", "emails"] and listed["alive"] is True and listed["running"] == 0
    assert listed["started_at"] and listed["heartbeat_at"]
    assert "default,emails" in human and "yes" in human and str(listed["pid"]) in human


def test_workers_when_none_registered(pg_url):
    code, out, _ = jobs(pg_url, "workers")
    assert code == 0 and out.strip() == "no workers registered on the new backend"


# -- an unreachable Postgres ---------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [("show", "x"), ("counts",), ("retry", "--all-failed"), ("purge", "--older-than", "1d"),
                                  ("workers",)])
def test_unreachable_postgres_is_one_line_exit_2(args):
    done = run_cli("jobs", *args, DATABASE_URL="postgresql://me:secret@127.0.0.1:1/x")
    assert done.returncode == 2 and done.stdout == ""
    line = one_error_line(done.stderr)
    assert "postgres is unreachable" in line and "secret" not in line


def test_a_database_nobody_migrated_is_one_line_saying_what_to_run(pg_server):
    """A raw psycopg error never crosses into migrator: a missing table is the adapter's SchemaMissing."""
    name = f"unmigrated_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        done = run_cli("jobs", "counts", DATABASE_URL=pg_server.url_for(name))
    finally:
        with psycopg.connect(pg_server.url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    assert done.returncode == 2, done.stdout + done.stderr
    assert one_error_line(done.stderr).startswith("error: the job tables are missing in postgres at ")
    assert "run `migrator db migrate` first" in done.stderr and "Traceback" not in done.stderr
