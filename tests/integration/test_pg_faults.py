"""Faults for real: workers SIGKILLed mid-job, Postgres stopped under a running worker, many workers at once."""
from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from adapters.base import JobSpec, JobState
from adapters.pg_backend import liveness, schema
from adapters.pg_backend.backend import PostgresBackend
from migrator.localservers import LocalPostgres
from tests import leaks
from tests.support import LEDGER_TABLE, stop_processes, ledger_counts, spawn_cli, wait_for


LIVENESS_SESSIONS = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{liveness.APPLICATION_NAME}'"


def pids_in(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_sigkilled_worker_job_is_recovered_by_another_worker(backend, pg_url, ledger_url, tmp_path):
    pid_file = tmp_path / "pids"
    backend.enqueue(JobSpec("tests.jobs.ledger_with_pid", ("victim", str(pid_file), 1.0), job_id="victim"))
    first = spawn_cli("worker", DATABASE_URL=pg_url)
    wait_for(lambda: pids_in(pid_file), what="job to start in the first worker")
    os.kill(pids_in(pid_file)[0], signal.SIGKILL)
    first.wait(10)
    assert backend.fetch_job("victim").state == JobState.STARTED  # the dead worker's claim is still there
    second = spawn_cli("worker", "--recovery-grace", "1", DATABASE_URL=pg_url)
    try:
        wait_for(lambda: backend.fetch_job("victim").state == JobState.FINISHED, timeout=60,
                 what="the orphaned job to be recovered and run")
    finally:
        second.terminate()
        second.wait(30)
    info = backend.fetch_job("victim")
    assert info.attempts == 2
    with psycopg.connect(pg_url) as conn:
        interrupted = conn.execute("SELECT interrupted FROM migrator_jobs WHERE id = 'victim'").fetchone()[0]
    assert interrupted == 1
    assert len(set(pids_in(pid_file))) == 2


def test_live_workers_jobs_are_never_taken(backend, pg_url, tmp_path):
    pid_file = tmp_path / "pids"
    backend.enqueue(JobSpec("tests.jobs.write_pid_then_sleep", (str(pid_file), 4), job_id="held"))
    busy = spawn_cli("worker", DATABASE_URL=pg_url)
    wait_for(lambda: pids_in(pid_file), what="job to start")
    reaper = spawn_cli("worker", "--recovery-grace", "0", DATABASE_URL=pg_url)
    try:
        wait_for(lambda: backend.fetch_job("held").state == JobState.FINISHED, timeout=60, what="job to finish")
    finally:
        for proc in (busy, reaper):
            proc.terminate()
            proc.wait(30)
    assert len(pids_in(pid_file)) == 1
    assert backend.fetch_job("held").attempts == 1


def test_several_workers_never_run_a_job_twice(backend, pg_url, ledger_url):
    with psycopg.connect(ledger_url, autocommit=True) as conn:  # a second run of a key would fail its job
        conn.execute("CREATE UNIQUE INDEX migrator_test_ledger_once ON migrator_test_ledger (key)")
    n = 600
    backend.enqueue_many([JobSpec("tests.jobs.ledger", (f"job-{i}",)) for i in range(n)])
    workers = [spawn_cli("worker", "--batch", "20", DATABASE_URL=pg_url) for _ in range(4)]
    try:
        wait_for(lambda: sum(ledger_counts(ledger_url).values()) >= n, timeout=120, what="all jobs to run")
        wait_for(lambda: not [c for c in backend.counts() if c.state != JobState.FINISHED], what="outcomes written")
    finally:
        stop_processes(workers)
    counts = ledger_counts(ledger_url)
    assert len(counts) == n
    assert [k for k, c in counts.items() if c > 1] == []
    assert {c.state: c.count for c in backend.counts()} == {JobState.FINISHED: n}


@pytest.fixture
def own_postgres():
    """A Postgres of this test's own, to stop and start under a running worker."""
    with tempfile.TemporaryDirectory(prefix="migrator-restart-") as d:
        server = LocalPostgres(Path(d), durable=True).start()
        try:
            schema.migrate(server.url)
            with psycopg.connect(server.url, autocommit=True) as conn:
                conn.execute(LEDGER_TABLE)
            yield server
        finally:
            server.stop("immediate")


def test_worker_survives_a_postgres_restart(own_postgres, monkeypatch):
    url = own_postgres.url
    monkeypatch.setenv("LEDGER_URL", url)
    backend = PostgresBackend(url)
    worker = spawn_cli("worker", DATABASE_URL=url)
    try:
        backend.enqueue_many([JobSpec("tests.jobs.ledger", (f"before-{i}",)) for i in range(20)])
        wait_for(lambda: len(ledger_counts(url)) == 20, what="jobs before the restart")
        backend.close()
        own_postgres.stop("fast")
        assert worker.poll() is None
        own_postgres.start()
        backend = PostgresBackend(url)
        backend.enqueue_many([JobSpec("tests.jobs.ledger", (f"after-{i}",)) for i in range(20)])
        wait_for(lambda: len(ledger_counts(url)) == 40, timeout=60, what="jobs after the restart")
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(30)
        backend.close()
    assert set(ledger_counts(url).values()) == {1}


def alive_pids(backend: PostgresBackend) -> set[int]:
    return {w.pid for w in backend.workers() if w.alive}


def test_worker_processes_stop_when_their_supervisor_is_sigkilled(backend, pg_url, tmp_path):
    """The OOM killer takes the supervisor: its worker processes do not run on unsupervised; each stops as on
    a graceful stop (the one mid-job finishes it first)."""
    pid_file = tmp_path / "pids"
    backend.enqueue(JobSpec("tests.jobs.write_pid_then_sleep", (str(pid_file), 2.0), job_id="mid-job"))
    supervisor = spawn_cli("worker", "--concurrency", "2", DATABASE_URL=pg_url)
    children = wait_for(lambda: len(alive_pids(backend)) == 2 and pids_in(pid_file) and alive_pids(backend),
                        what="two worker processes, one running the job")
    supervisor.send_signal(signal.SIGKILL)
    supervisor.wait(10)
    wait_for(lambda: all(leaks.gone(pid) for pid in children), timeout=60, what="the orphaned workers to stop")
    assert backend.fetch_job("mid-job").state is JobState.FINISHED  # a graceful stop: the job ran to its end
    assert alive_pids(backend) == set()


def test_supervisor_replaces_a_worker_process_that_dies(backend, pg_url):
    supervisor = spawn_cli("worker", "--concurrency", "2", "--recovery-grace", "1", DATABASE_URL=pg_url)
    try:
        first = wait_for(lambda: len(alive_pids(backend)) == 2 and alive_pids(backend), what="two worker processes")
        victim = sorted(first)[0]
        os.kill(victim, signal.SIGKILL)
        now = wait_for(lambda: len(alive_pids(backend) - {victim}) == 2 and alive_pids(backend), timeout=60,
                       what="a replacement worker process")
        assert victim not in now and len(now - first) == 1
        backend.enqueue(JobSpec("tests.jobs.add", (1, 2), job_id="after-replacement"))
        wait_for(lambda: backend.fetch_job("after-replacement").state == JobState.FINISHED, what="the job to run")
        assert supervisor.poll() is None
    finally:
        supervisor.terminate()
        assert supervisor.wait(30) == 0


def test_a_postgres_crash_does_not_reap_the_running_jobs_of_live_workers(own_postgres, tmp_path):
    """Postgres crashes (immediate stop) for longer than the recovery grace while a job runs: every worker lost its
    liveness lock and could not heartbeat, so right after the restart each looks dead to the first reaper. The
    running job must not be requeued (it would run twice): the server's own start time tells a restart apart.
    The worker running the job is held (SIGSTOP) until the other workers have surely reaped, so its own reconnect
    cannot win the race by luck; it is let go within the grace, as a live worker reconnects."""
    url = own_postgres.url
    grace = 8.0
    pid_file = tmp_path / "pids"
    backend = PostgresBackend(url)
    backend.enqueue(JobSpec("tests.jobs.write_pid_then_sleep", (str(pid_file), 3.0), job_id="long"))
    backend.close()
    workers = [spawn_cli("worker", "--recovery-grace", str(grace), DATABASE_URL=url) for _ in range(3)]
    held = False
    try:
        [runner] = wait_for(lambda: pids_in(pid_file), what="the job to start")
        with psycopg.connect(url, autocommit=True) as conn:  # all three are up before the crash, not starting
            wait_for(lambda: conn.execute(LIVENESS_SESSIONS).fetchone()[0] == 3, what="the three workers to start")
        # Workers commit claims asynchronously (docs/backend.md): a crash may forget a claim and the job then runs
        # again, a separate, documented re-run. Flushing the WAL first makes the claim survive: what is tested here
        # is the reaper alone.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        os.kill(runner, signal.SIGSTOP)
        held = True
        own_postgres.stop("immediate")
        time.sleep(grace + 1)  # longer than the grace: every heartbeat is stale when the server comes back
        own_postgres.start()
        with psycopg.connect(url, autocommit=True) as conn:
            wait_for(lambda: conn.execute(LIVENESS_SESSIONS).fetchone()[0] >= 2, timeout=30,
                     what="the two idle workers to reconnect")
        time.sleep(2 * 2.0 + 1)  # two rounds of their reaper (every 2 s): without the fix the job is requeued now
        os.kill(runner, signal.SIGCONT)  # within the grace after the restart, as a live worker's reconnect is
        held = False
        backend = PostgresBackend(url)
        wait_for(lambda: backend.fetch_job("long").state is JobState.FINISHED, timeout=90, what="the job to end")
        time.sleep(3)  # a requeued copy would have started by now (two idle workers, notified)
        assert len(pids_in(pid_file)) == 1, f"the job ran {len(pids_in(pid_file))} times"
        assert backend.fetch_job("long").state is JobState.FINISHED
    finally:
        if held:
            os.kill(runner, signal.SIGCONT)
        stop_processes(workers)
        backend.close()
