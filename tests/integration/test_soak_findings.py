"""What the chaos soak (bench/soak.py) found, pinned as small deterministic tests. Each xfail is a product bug
still open: strict, so the fix turns it into a failure that says to drop the mark."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest
import redis
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from adapters.base import JobSpec, JobState
from adapters.pg_backend import liveness
from adapters.rq_backend import RQBackend
from tests import jobs
from tests.support import spawn_cli, stop_processes, wait_for


def test_a_scheduled_job_enqueued_in_a_pipeline_is_not_in_the_schedule_before_the_pipeline_runs(rqb: RQBackend,
                                                                                              conn: redis.Redis):
    """RQ 2.x's ScheduledJobRegistry.schedule() ZADDs on its own connection, not the pipeline it is given: the id
    was in the schedule before the job hash existed, and RQ's scheduler dropped it (the soak lost jobs so). The RQ
    adapter now schedules on the pipeline (adapters/rq_backend/compat.py schedule)."""
    spec = JobSpec(f"{jobs.noop.__module__}.noop", (), job_id="due", run_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    registry = ScheduledJobRegistry("default", connection=conn)
    with conn.pipeline() as pipe:  # what transfer's land (inside its MULTI) and RQBackend.enqueue_many do
        rqb._enqueue_batch([spec], pipe, {})
        in_schedule = conn.zscore(registry.key, "due") is not None
        hash_exists = conn.exists(Job("due", connection=conn).key)
        pipe.execute()
    assert not (in_schedule and not hash_exists), "the schedule lists a job whose hash does not exist yet"


def test_a_worker_that_loses_its_connection_while_a_job_runs_still_records_its_outcome(pg_url, backend, ledger_url):
    """Postgres ends the worker's job session (as a restart does) while the job runs; the worker's liveness session
    keeps its lock, so the reaper rightly leaves the job alone: the worker itself must write the outcome."""
    backend.enqueue(JobSpec(f"{jobs.ledger.__module__}.ledger", ("slow",), {"sleep": 3.0}, job_id="slow"))
    proc = spawn_cli("worker", DATABASE_URL=pg_url, LEDGER_URL=ledger_url)
    try:
        wait_for(lambda: (info := backend.fetch_job("slow")) is not None and info.state is JobState.STARTED,
                 timeout=60, what="the job to start")
        with psycopg.connect(pg_url, autocommit=True) as conn:
            ended = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE "
                                 "'migrator-worker-%%' AND application_name <> %s", [liveness.APPLICATION_NAME]).fetchall()
        assert ended
        state = wait_for(lambda: (info := backend.fetch_job("slow")) is not None
                         and info.state is not JobState.STARTED and info.state, timeout=30, what="the outcome")
        assert state is JobState.FINISHED
    finally:
        stop_processes([proc])


def test_a_job_a_crash_left_running_under_a_live_worker_runs_again(pg_url, backend, ledger_url):
    """What a crash leaves when it forgets an acknowledged outcome, made on a real server: the job ran (ledger row),
    its row is 'running' under the worker again, and every session of the worker is ended (the restart). The worker
    reconnects, sends its recent outcomes again and gives back what it still holds but does not run."""
    backend.enqueue(JobSpec(f"{jobs.ledger.__module__}.ledger", ("forgotten",), job_id="forgotten"))
    proc = spawn_cli("worker", "--recovery-grace", "1", DATABASE_URL=pg_url, LEDGER_URL=ledger_url)
    try:
        wait_for(lambda: (info := backend.fetch_job("forgotten")) is not None and info.state is JobState.FINISHED,
                 timeout=60, what="the job to run")
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE migrator_jobs SET state = 'running', finished_at = NULL, worker_id = "
                         "(SELECT max(id) FROM migrator_workers) WHERE id = 'forgotten'")
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE "
                         "'migrator-worker-%%'")
        wait_for(lambda: (info := backend.fetch_job("forgotten")) is not None and info.state is JobState.FINISHED,
                 timeout=30, what="the job to run again")
    finally:
        stop_processes([proc])
