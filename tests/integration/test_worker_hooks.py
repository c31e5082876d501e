"""The app's own code around the new backend's worker, as `rq worker` apps have it: a set-up function per worker
process, RQ-style exception handlers, failures logged at ERROR with the exception (what Sentry reports), and a result
the new backend cannot store recorded as an error, never a silent repr."""
from __future__ import annotations

import logging
import threading

import pytest

from adapters.base import JobSpec, JobState
from adapters.pg_backend.worker import Worker
from adapters.pg_backend.worker_options import WorkerOptions
from tests.support import ledger_counts, run_cli


def test_the_set_up_hook_runs_in_each_worker_process_before_its_jobs(backend, pg_url):
    for i in range(4):
        backend.enqueue(JobSpec("tests.jobs.needs_setup", job_id=f"s{i}"))
    without = run_cli("worker", "--burst", DATABASE_URL=pg_url)
    assert without.returncode == 0 and backend.fetch_job("s0").state is JobState.FAILED
    for i in range(4, 8):
        backend.enqueue(JobSpec("tests.jobs.needs_setup", job_id=f"s{i}"))
    done = run_cli("worker", "--burst", "--concurrency", "2", "--setup", "tests.jobs:worker_setup", DATABASE_URL=pg_url)
    assert done.returncode == 0, done.stderr
    assert {backend.fetch_job(f"s{i}").state for i in range(4, 8)} == {JobState.FINISHED}


def test_a_set_up_hook_that_does_not_import_is_one_line_exit_2(pg_url):
    done = run_cli("worker", "--burst", "--setup", "app.nowhere:setup", DATABASE_URL=pg_url)
    assert done.returncode == 2 and done.stderr.startswith("error: cannot find module 'app.nowhere'")


def test_exception_handlers_run_in_rq_order_and_a_false_stops_the_chain(backend, pg_url, ledger_url):
    backend.enqueue(JobSpec("tests.jobs.boom", ("kaput",), job_id="h1"))
    done = run_cli("worker", "--burst", "--exception-handler", "tests.jobs:record_failure", DATABASE_URL=pg_url)
    assert done.returncode == 0, done.stderr
    assert ledger_counts(ledger_url) == {"handled:h1:ValueError:kaput": 1}
    backend.enqueue(JobSpec("tests.jobs.boom", ("again",), job_id="h2"))
    stopped = run_cli("worker", "--burst", "--exception-handler", "tests.jobs:stop_the_chain",
                      "--exception-handler", "tests.jobs:record_failure", DATABASE_URL=pg_url)
    assert stopped.returncode == 0
    assert "handled:h2:ValueError:again" not in ledger_counts(ledger_url)  # the first handler returned False
    assert backend.fetch_job("h2").state is JobState.FAILED  # handlers never change what is recorded


def test_a_failed_job_is_an_error_record_carrying_the_exception(backend, pg_url, caplog):
    backend.enqueue(JobSpec("tests.jobs.boom", ("for sentry",), job_id="e1"))
    worker = Worker(pg_url, WorkerOptions(burst=True))
    with caplog.at_level(logging.WARNING, logger="migrator.worker"):
        thread = threading.Thread(target=worker.run)  # not the main thread: no signal handlers needed
        thread.start()
        thread.join(60)
    [record] = [r for r in caplog.records if "e1" in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError) and str(record.exc_info[1]) == "for sentry"


def test_a_result_the_new_backend_cannot_store_is_an_error_not_a_repr(backend, pg_url):
    backend.enqueue(JobSpec("tests.jobs.unstorable_result", job_id="r1"))
    done = run_cli("worker", "--burst", DATABASE_URL=pg_url)
    assert done.returncode == 0, done.stderr
    info = backend.fetch_job("r1")
    assert (info.state, info.error_type, info.attempts) == (JobState.FAILED, "ResultNotStored", 1)
    assert "its result cannot be stored" in info.error_message and info.result is None
