"""Operating jobs the RQ way on both backends: `migrator jobs cancel|delete --id` finds the job wherever the flags
sent it, and an on_stopped callback runs when a running job is stopped (RQ: `send_stop_job_command`; the new
backend: its worker interrupting the job at shutdown)."""
from __future__ import annotations

import json
import signal

from rq import Callback
from rq.command import send_stop_job_command

from adapters.base import BackendName
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.worker import Worker
from adapters.pg_backend.worker_options import WorkerOptions
from adapters.rq_backend import RQBackend
from migrator.transfer import run as transfer
from migrator.transfer.values import Direction
from tests import rq_api_jobs as jobs
from tests.rq_api_support import queue, router, side  # noqa: F401  (fixtures)
from tests.support import ledger_counts, run_cli, spawn_cli, spawn_rq_worker, stop_processes, wait_for


def test_cli_cancels_and_deletes_on_either_backend(queue, side, pg_url, redis_url):
    urls = {"DATABASE_URL": pg_url, "REDIS_URL": redis_url}
    first, second = queue.enqueue(jobs.add, 1, 2), queue.enqueue(jobs.add, 3, 4)
    done = run_cli("jobs", "cancel", "--id", first.id, **urls)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"canceled {first.id} on {side.value}"
    assert first.get_status() == "canceled"
    again = run_cli("jobs", "cancel", "--id", first.id, "--json", **urls)
    assert again.returncode == 1 and "already canceled" in again.stderr
    assert json.loads(again.stdout)["canceled"] == {}
    gone = run_cli("jobs", "delete", "--id", second.id, "--id", "no-such-job", **urls)
    assert gone.returncode == 1 and "no job no-such-job on either backend" in gone.stderr
    assert gone.stdout.strip() == f"deleted {second.id} on {side.value}"
    assert queue.fetch_job(second.id) is None and queue.job_ids == []


def test_on_stopped_runs_when_a_running_job_is_stopped(queue, side, pg_url, redis_url, ledger_url, router):
    job = queue.enqueue(jobs.wait_for_stop, on_stopped=jobs.on_stop)
    if side is BackendName.RQ:
        worker = spawn_rq_worker(redis_url, "default")
    else:
        worker = spawn_cli("worker", "--shutdown-grace", "0.5", DATABASE_URL=pg_url)
    try:
        wait_for(lambda: f"started:{job.id}" in ledger_counts(ledger_url), what="the job to start")
        if side is BackendName.RQ:
            send_stop_job_command(router.backends[BackendName.RQ].connection, job.id)
        else:
            worker.send_signal(signal.SIGTERM)  # past the shutdown grace the worker interrupts the job
        wait_for(lambda: f"stopped:{job.id}" in ledger_counts(ledger_url), what="the on_stopped callback")
    finally:
        stop_processes([worker])
    assert ledger_counts(ledger_url)[f"stopped:{job.id}"] == 1


def test_callbacks_move_with_their_job_and_run_on_the_new_backend(pg_url, redis_url, ledger_url):
    legacy, new = RQBackend(redis_url), PostgresBackend(pg_url)
    try:
        job = legacy.queue("default").enqueue_call(jobs.add, (2, 3), on_success=Callback(jobs.on_ok, timeout=7),
                                                   on_failure=jobs.on_fail, job_id="moves")
        transfer.transfer_pending(legacy, new, Direction.TO_POSTGRES)
        spec = new.fetch_job(job.id).spec
        assert (spec.on_success, spec.on_failure) == ("tests.rq_api_jobs.on_ok", "tests.rq_api_jobs.on_fail")
        assert spec.callback_timeouts == {"on_success": 7}
        Worker(pg_url, WorkerOptions(burst=True, poll_seconds=0.1)).run()
    finally:
        legacy.close()
        new.close()
    assert ledger_counts(ledger_url) == {"success:moves:5": 1}
