"""Fair concurrency: slow jobs spread across the processes of `--concurrency N`, and the unstarted rest of a batch
goes back to the queue while the job in front of it runs (observed through the jobs table, no timing)."""
from __future__ import annotations

import signal
from pathlib import Path

import psycopg

from adapters.base import JobSpec, JobState
from adapters.pg_backend import claimer, db
from tests.support import run_cli, spawn_cli, stop_processes, wait_for


def pids_in(path: Path) -> set[int]:
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def states(pg_url: str) -> dict[str, int]:
    with psycopg.connect(pg_url) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM migrator_jobs GROUP BY state").fetchall())


def test_concurrency_4_runs_4_slow_jobs_at_once_and_leaves_the_rest_queued(backend, pg_url, tmp_path):
    pid_file = tmp_path / "pids"
    backend.enqueue_many([JobSpec("tests.jobs.write_pid_then_sleep", (str(pid_file), 120), job_id=f"slow-{i}")
                          for i in range(8)])
    worker = spawn_cli("worker", "--concurrency", "4", "--shutdown-grace", "1", DATABASE_URL=pg_url)
    try:
        # Four processes each run one job, and none holds a second one back from the others.
        wait_for(lambda: len(pids_in(pid_file)) == 4 and states(pg_url) == {"running": 4, "queued": 4},
                 timeout=60, what="4 slow jobs running in 4 processes, 4 queued")
        with psycopg.connect(pg_url) as conn:
            owners = conn.execute("SELECT count(DISTINCT worker_id) FROM migrator_jobs WHERE state = 'running'")
            assert owners.fetchone() == (4,)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
    finally:
        stop_processes([worker])
    assert states(pg_url) == {"queued": 8}  # the running ones were given back at the end of the grace


def test_a_slow_job_hands_the_rest_of_its_batch_to_another_worker(backend, pg_url, tmp_path):
    # 63 fast jobs first: the claim size doubles 1, 2, 4, ... 32, so the slow job heads a batch of fast ones.
    pid_file = tmp_path / "pids"
    backend.enqueue_many([JobSpec("tests.jobs.noop", priority=10, job_id=f"first-{i}") for i in range(63)])
    backend.enqueue(JobSpec("tests.jobs.write_pid_then_sleep", (str(pid_file), 120), priority=5, job_id="slow"))
    backend.enqueue_many([JobSpec("tests.jobs.noop", job_id=f"behind-{i}") for i in range(20)])
    busy = spawn_cli("worker", "--batch", "100", "--shutdown-grace", "1", DATABASE_URL=pg_url)
    try:
        wait_for(lambda: pids_in(pid_file), timeout=60, what="the slow job to start")
        # While the slow job runs, a second worker finds the jobs behind it runnable and runs them all.
        done = run_cli("worker", "--burst", DATABASE_URL=pg_url)
        assert done.returncode == 0, done.stderr
        assert {backend.fetch_job(f"behind-{i}").state for i in range(20)} == {JobState.FINISHED}
        assert backend.fetch_job("slow").state == JobState.STARTED
        busy.send_signal(signal.SIGTERM)
        assert busy.wait(60) == 0
    finally:
        stop_processes([busy])
    info = backend.fetch_job("slow")
    assert (info.state, info.attempts) == (JobState.QUEUED, 0)


def test_a_claim_ahead_is_held_like_a_batch_and_handed_back_behind_a_slow_job(backend, pg_url):
    # The releaser claims the next batch while the main thread runs the current one; those jobs wait in `held`,
    # so a running job that turns out slow hands them back like any others (no timing: states are observed).
    backend.enqueue_many([JobSpec("tests.jobs.noop", job_id=f"j{i}") for i in range(10)])
    database = db.Database(pg_url, pool_size=1)
    held = claimer.Held()
    releaser = claimer.Releaser(database, held, 4242, slow=0.05, queues=["default"], sync_commit=False).start()
    try:
        releaser.claim_ahead(4)
        releaser.settle()
        assert releaser.ready() and len(held) == 4 and not releaser.claim_lost
        assert states(pg_url) == {"running": 4, "queued": 6}
        first = held.start_next()  # "runs" until the releaser judges it slow and hands the other three back
        wait_for(lambda: states(pg_url) == {"running": 1, "queued": 9}, timeout=30, what="the held three back")
        assert held.start_next() is None
        with psycopg.connect(pg_url) as conn:
            row = conn.execute("SELECT id, worker_id, attempts FROM migrator_jobs WHERE state = 'running'").fetchone()
        assert first is not None and row == (first.id, 4242, 1)
        back = backend.fetch_job("j9" if first.id != "j9" else "j8")
        assert back is not None and back.attempts == 0
    finally:
        releaser.stop()
        database.close()
