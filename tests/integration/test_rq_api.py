"""RQ's Queue and Job API through migrator, each assertion run both ways: the job routed to RQ (RQ's own Job) and to
Postgres (migrator.Job). Written from RQ's documentation of each behaviour; the same assertion holds on both."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import rq
from rq import Callback, Retry
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Dependency
from rq.results import Result

from adapters.base import BackendName, JobSpec
from migrator import Job, Queue
from tests import rq_api_jobs as jobs
from tests.rq_api_support import queue, router, side, work  # noqa: F401  (fixtures)
from tests.support import ROOT, ledger_counts, subprocess_env


def test_handle_reads_back_the_enqueue_options(queue, side):
    job = queue.enqueue(jobs.add, 1, 2, job_id="opts", job_timeout="2m", result_ttl=100, ttl=600, failure_ttl=900,
                        retry=Retry(max=2, interval=[5]), meta={"tenant": 3}, description="adds")
    assert isinstance(job, rq.job.Job) and job.backend is side
    assert (job.id, job.origin, job.func_name, tuple(job.args), job.kwargs) == ("opts", "default", "tests.rq_api_jobs.add",
                                                                                (1, 2), {})
    assert (job.timeout, job.result_ttl, job.ttl, job.failure_ttl) == (120, 100, 600, 900)
    assert (job.description, job.meta, job.retries_left) == ("adds", {"tenant": 3}, 2)
    assert job.get_status() == "queued" and job.is_queued and not job.is_finished
    job.refresh()
    assert job.enqueued_at is not None and job.started_at is None and job.ended_at is None
    assert (job.timeout, job.meta, job.description) == (120, {"tenant": 3}, "adds")
    assert queue.enqueue(jobs.add, 1, 1).timeout == 180  # RQ's default job_timeout


def test_dependency_takes_the_handle_and_the_child_follows_its_parent(queue, side, router, pg_url):
    parent = queue.enqueue(jobs.add, 1, 2)
    child = queue.enqueue(jobs.add, 3, 4, depends_on=Dependency(jobs=[parent]))
    assert child.backend is side and child.get_status() == "deferred"
    assert child.dependency.id == parent.id
    work(router, pg_url)
    work(router, pg_url)
    assert child.get_status() == "finished" and child.return_value() == 7


def test_meta_round_trip_and_fetch_by_id_from_a_fresh_process(queue, side, pg_url, redis_url):
    job = queue.enqueue(jobs.add, 1, 2, meta={"a": 1})
    job.meta["b"] = 2
    job.save_meta()
    assert job.get_meta() == {"a": 1, "b": 2}
    script = ("import sys\nfrom migrator import Job, Queue\n"
              "j = Job.fetch(sys.argv[1])\n"
              "print(j.backend.value, j.get_status().value, sorted(j.get_meta().items()), j.func_name,"
              " Queue('default').fetch_job(sys.argv[1]).id == j.id, Queue('other').fetch_job(sys.argv[1]))\n")
    done = subprocess.run([sys.executable, "-c", script, job.id], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=subprocess_env(DATABASE_URL=pg_url, REDIS_URL=redis_url))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == (f"{side.value} queued [('a', 1), ('b', 2)] tests.rq_api_jobs.add True "
                                          "None")


def test_results_after_a_run(queue, side, router, pg_url):
    ok, bad = queue.enqueue(jobs.add, 20, 22), queue.enqueue(jobs.fail, "no luck")
    work(router, pg_url)
    assert ok.get_status() == "finished" and ok.is_finished and ok.return_value() == 42
    latest = ok.latest_result()
    assert latest.type == Result.Type.SUCCESSFUL and latest.return_value == 42
    assert [r.return_value for r in ok.results()][:1] == [42]
    ok.refresh()
    assert ok.started_at is not None and ok.ended_at is not None and ok.ended_at >= ok.started_at
    assert bad.get_status() == "failed" and bad.is_failed and bad.return_value() is None
    assert bad.latest_result().type == Result.Type.FAILED
    assert "ValueError: no luck" in bad.latest_result().exc_string and "ValueError" in bad.exc_info


def test_cancel_a_queued_job_and_delete(queue, side, router, pg_url):
    canceled, deleted, kept = queue.enqueue(jobs.add, 1, 1), queue.enqueue(jobs.add, 2, 2), queue.enqueue(jobs.add, 3, 3)
    canceled.cancel()
    assert canceled.get_status() == "canceled" and canceled.is_canceled
    with pytest.raises(InvalidJobOperation):
        canceled.cancel()
    deleted.delete()
    assert queue.fetch_job(deleted.id) is None
    with pytest.raises(NoSuchJobError):
        Job.fetch(deleted.id, router=router)
    work(router, pg_url)
    assert canceled.get_status() == "canceled" and canceled.return_value() is None
    assert kept.return_value(refresh=True) == 6


def test_queue_counts_lists_and_empties_both_backends(queue, side):
    ids = [queue.enqueue(jobs.add, i, i).id for i in range(3)]
    queue.enqueue_in(3600, jobs.add, 9, 9)  # scheduled: not in the queue, as with RQ
    assert len(queue) == queue.count == 3 and not queue.is_empty()
    assert queue.job_ids == ids and queue.get_job_ids(1, 1) == ids[1:2]
    assert [j.id for j in queue.get_jobs()] == ids and all(j.backend is side for j in queue.jobs)
    assert queue.empty() == 3
    assert len(queue) == 0 and queue.is_empty() and queue.job_ids == []


def test_get_current_job_inside_the_job(queue, side, router, pg_url):
    job = queue.enqueue(jobs.report_progress, 3, label="x", meta={"kept": True})
    work(router, pg_url)
    seen = job.return_value(refresh=True)
    assert seen == {"id": job.id, "same": True, "origin": "default", "func_name": "tests.rq_api_jobs.report_progress",
                    "args": [3], "kwargs": {"label": "x"}, "meta": {"kept": True, "progress": 3}}
    assert job.get_meta() == {"kept": True, "progress": 3}


def test_callbacks_run_with_rqs_semantics(queue, side, router, pg_url, ledger_url):
    ok = queue.enqueue(jobs.add, 1, 2, on_success=Callback(jobs.on_ok), on_failure=jobs.on_fail)
    bad = queue.enqueue(jobs.fail, on_success=jobs.on_ok, on_failure=Callback("tests.rq_api_jobs.on_fail", 10))
    broken = queue.enqueue(jobs.add, 2, 2, on_success=jobs.raise_in_callback, on_failure=jobs.on_fail)
    slow = queue.enqueue(jobs.add, 3, 3, on_success=Callback(jobs.slow_callback, timeout=1))
    work(router, pg_url)
    notes = ledger_counts(ledger_url)
    assert notes == {f"success:{ok.id}:3": 1, f"failure:{bad.id}:ValueError": 1,
                     f"failure:{broken.id}:RuntimeError": 1}
    assert ok.get_status() == "finished" and bad.get_status() == "failed"
    assert broken.get_status() == "failed" and "the success callback failed" in broken.exc_info
    assert slow.get_status() == "failed"  # a callback past its timeout fails the job, as in RQ


def test_a_callback_that_does_not_import_is_an_error_at_enqueue(queue, side):
    with pytest.raises(ValueError, match="on_failure='tests.rq_api_jobs.missing' does not import"):
        queue.enqueue(jobs.add, 1, 2, on_failure="tests.rq_api_jobs.missing")
    assert len(queue) == 0


def test_unique_job_id_is_taken_once_under_a_race(queue, side):
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def enqueue() -> None:
        start.wait()
        try:
            job = queue.enqueue(jobs.add, 1, 2, job_id="only-once", unique=True)
            result = job.backend.value
        except DuplicateJobError:
            result = "duplicate"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=enqueue) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["duplicate"] * 5 + [side.value]
    assert queue.job_ids == ["only-once"]


@pytest.mark.parametrize("options, error, message", [
    ({"ttl": 0}, ValueError, "Job ttl must be greater than 0"),
    ({"ttl": -1}, ValueError, "Job ttl must be greater than 0"),
    ({"job_timeout": 0}, ValueError, "0 timeout is not allowed"),
    ({"job_id": 5}, TypeError, "Job ID must be a string"),
    ({"job_id": "not an id!"}, ValueError, "Job ID must only contain"),
    ({"unique": True}, ValueError, "unique=True requires an explicit job_id"),
    ({"args": (1, 2)}, ValueError, "Extra positional arguments cannot be used"),
])
def test_what_rq_refuses_is_refused_with_rqs_exception_types(queue, side, options, error, message):
    with pytest.raises(error, match=message):
        queue.enqueue(jobs.add, 1, **options)
    assert len(queue) == 0


def test_is_async_false_runs_the_job_inline(router, side):
    inline = Queue("default", router=router, is_async=False, connection=router.backends[BackendName.RQ].connection)
    job = inline.enqueue(jobs.add, 2, 3)
    assert job.get_status() == "finished" and job.return_value() == 5
    failed = inline.enqueue(jobs.fail)
    assert failed.get_status() == "failed"


def test_queue_options_are_defaults_for_its_jobs(router, side):
    q = Queue("default", router=router, default_timeout="5m", result_ttl=42)
    job = q.enqueue(jobs.add, 1, 2)
    job.refresh()
    assert (job.timeout, job.result_ttl) == (300, 42)
    with pytest.raises(TypeError, match="death_penalty_class"):
        Queue("default", router=router, death_penalty_class=object)


def test_unique_sees_a_job_on_the_other_backend(queue, side, router):
    other = BackendName.RQ if side is BackendName.POSTGRES else BackendName.POSTGRES
    router.backends[other].enqueue(JobSpec("tests.rq_api_jobs.add", (1, 2), job_id="taken"))
    with pytest.raises(DuplicateJobError):
        queue.enqueue(jobs.add, 1, 2, job_id="taken", unique=True)
    assert queue.fetch_job("taken").backend is other


def test_exists_and_fetch_many_look_in_both_backends(queue, side, router):
    job = queue.enqueue(jobs.add, 1, 2)
    assert Job.exists(job.id, router=router) and not Job.exists("nope", router=router)
    found = Job.fetch_many([job.id, "nope"], router=router)
    assert [j.id if j else None for j in found] == [job.id, None] and found[0].backend is side
