"""RQBackend against a real, flushed Redis and real `rq worker` processes (default Worker and SimpleWorker)."""
from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
import rq
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from adapters.base import (BackendName, BackendUnavailable, JobBackend, JobRefused, JobSpec, JobState,
                           RetryPolicy, StateCount)
from adapters.rq_backend import RQBackend
from adapters.rq_backend.decode import UNKNOWN_FUNC
from adapters.base import ANY_JOB
from migrator.localservers import free_port
from tests.support import ROOT, subprocess_env, wait_for

RQ_CLI = str(Path(sys.executable).parent / "rq")
WORKER_CLASSES = ["rq.worker.Worker", "rq.worker.SimpleWorker"]
# A pickle of ("tests.jobs.add", None, (Thing(),), {}) where Thing's module does not exist (protocol 0).
MISSING_CLASS_PAYLOAD = b"(Vtests.jobs.add\nN(cnonexistent_mod_xyz\nThing\n)Rt}t."


def burst(redis_url: str, *queues: str, worker_class: str = "rq.worker.Worker") -> None:
    """Run a real `rq worker --burst --with-scheduler` until the queues are empty."""
    done = subprocess.run([RQ_CLI, "worker", "--burst", "--with-scheduler", "--url", redis_url,
                           "--worker-class", worker_class, *queues], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def counts_of(counts: list[StateCount]) -> dict[tuple[str, str, JobState], int]:
    return {(c.queue, c.job_name, c.state): c.count for c in counts}


def nonzero(raw: dict[JobState, int]) -> dict[JobState, int]:
    return {state: n for state, n in raw.items() if n}


def full_spec(**changes: object) -> JobSpec:
    base = JobSpec(job_name="tests.jobs.echo", args=(1, "two", [3.0], {"four": None}), kwargs={"k": (5, 6)},
                   queue="rt", job_id=f"job-{uuid.uuid4()}", timeout=42, result_ttl=600, ttl=900,
                   failure_ttl=1200, retry=RetryPolicy(2, (5, 10)), meta={"tenant": "acme", "n": 1},
                   description="echo for the round trip", on_success="tests.jobs.note_success",
                   on_failure="tests.jobs.note_failure")
    return JobSpec(**{**{f: getattr(base, f) for f in JobSpec.__slots__}, **changes})  # type: ignore[arg-type]


def test_is_a_job_backend(rqb: RQBackend) -> None:
    assert isinstance(rqb, JobBackend)
    assert rqb.name is BackendName.RQ
    rqb.ping()


def test_enqueue_maps_every_option_onto_rq(rqb: RQBackend, conn: redis.Redis) -> None:
    parent = rqb.enqueue(JobSpec(job_name="tests.jobs.noop", queue="opts"))
    spec = full_spec(queue="opts", depends_on=(parent.job_id,), at_front=True)
    done = rqb.enqueue(spec)
    assert (done.backend, done.job_id, done.queue, done.job_name) == (BackendName.RQ, spec.job_id, "opts", spec.job_name)
    job = Job.fetch(done.job_id, connection=conn)
    assert (job.func_name, tuple(job.args), job.kwargs) == (spec.job_name, spec.args, dict(spec.kwargs))
    assert (job.timeout, job.result_ttl, job.ttl, job.failure_ttl) == (42, 600, 900, 1200)
    assert (job.retries_left, job.retry_intervals) == (2, [5, 10])
    assert (job.meta, job.description, job.origin) == (dict(spec.meta), spec.description, "opts")
    assert job.dependency_ids == [parent.job_id] and job.get_status() == "deferred"
    assert job.enqueue_at_front is True
    assert conn.hget(job.key, "success_callback_name") == b"tests.jobs.note_success"
    assert conn.hget(job.key, "failure_callback_name") == b"tests.jobs.note_failure"


def test_enqueue_at_front_and_run_at(rqb: RQBackend, conn: redis.Redis) -> None:
    first = rqb.enqueue(JobSpec(job_name="tests.jobs.noop", queue="order"))
    front = rqb.enqueue(JobSpec(job_name="tests.jobs.noop", queue="order", at_front=True))
    assert rq.Queue("order", connection=conn).job_ids == [front.job_id, first.job_id]
    run_at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    later = rqb.enqueue(JobSpec(job_name="tests.jobs.noop", queue="order", run_at=run_at))
    registry = ScheduledJobRegistry(queue=rq.Queue("order", connection=conn))
    assert registry.get_job_ids() == [later.job_id]
    assert registry.get_scheduled_time(later.job_id) == run_at


def test_enqueue_refuses_what_rq_cannot_honour(rqb: RQBackend, conn: redis.Redis) -> None:
    with pytest.raises(JobRefused, match="priority"):
        rqb.enqueue(JobSpec(job_name="tests.jobs.noop", priority=5))
    with pytest.raises(JobRefused, match="timezone-aware"):
        rqb.enqueue(JobSpec(job_name="tests.jobs.noop", run_at=datetime(2030, 1, 1)))
    assert conn.keys("*") == []


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_real_rq_workers_run_what_the_adapter_enqueued(rqb: RQBackend, conn: redis.Redis, redis_url: str,
                                                       worker_class: str) -> None:
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    ok = rqb.enqueue(JobSpec(job_name="tests.jobs.add", args=(2, 3), queue="run", on_success="tests.jobs.note_success"))
    bad = rqb.enqueue(JobSpec(job_name="tests.jobs.boom", args=("nope",), queue="run",
                              on_failure="tests.jobs.note_failure"))
    child = rqb.enqueue(JobSpec(job_name="tests.jobs.add", args=(1, 1), queue="run", depends_on=(ok.job_id,)))
    due = rqb.enqueue(JobSpec(job_name="tests.jobs.add", kwargs={"a": 4, "b": 4}, queue="run", run_at=past))
    many = rqb.enqueue_many([JobSpec(job_name="tests.jobs.add", args=(i, i), queue="run") for i in range(3)])
    burst(redis_url, "run", worker_class=worker_class)

    results = {e.job_id: rqb.fetch_job(e.job_id) for e in [ok, child, due, *many]}
    assert {jid: (info.state, info.result) for jid, info in results.items() if info} == {
        ok.job_id: (JobState.FINISHED, 5), child.job_id: (JobState.FINISHED, 2), due.job_id: (JobState.FINISHED, 8),
        **{e.job_id: (JobState.FINISHED, 2 * i) for i, e in enumerate(many)}}
    failed = rqb.fetch_job(bad.job_id)
    assert failed is not None and failed.state is JobState.FAILED
    assert (failed.error_type, failed.error_message, failed.job_name) == ("ValueError", "nope", "tests.jobs.boom")
    assert conn.lrange("tests:succeeded", 0, -1) == [ok.job_id.encode()]
    assert conn.lrange("tests:failed", 0, -1) == [bad.job_id.encode()]
    assert counts_of(rqb.counts("run")) == {("run", ANY_JOB, JobState.FINISHED): 6,
                                            ("run", ANY_JOB, JobState.FAILED): 1}


def test_counts_every_registry_state(rqb: RQBackend, conn: redis.Redis, redis_url: str) -> None:
    rqb.enqueue(JobSpec(job_name="tests.jobs.add", args=(1, 2), queue="work"))
    rqb.enqueue(JobSpec(job_name="tests.jobs.boom", queue="work"))
    retrying = rqb.enqueue(JobSpec(job_name="tests.jobs.boom", queue="work", retry=RetryPolicy(2, (3600,))))
    burst(redis_url, "work")

    q = rq.Queue("work", connection=conn)
    parent = q.enqueue("tests.jobs.add", 1, 1)
    q.enqueue("tests.jobs.noop")
    q.enqueue_in(timedelta(hours=1), "tests.jobs.noop")
    q.enqueue("tests.jobs.add", 2, 2, depends_on=parent)
    q.enqueue("tests.jobs.noop").cancel()

    expected = {JobState.QUEUED: 2, JobState.SCHEDULED: 1, JobState.RETRYING: 1, JobState.DEFERRED: 1,
                JobState.FAILED: 1, JobState.FINISHED: 1, JobState.CANCELED: 1}
    assert counts_of(rqb.counts("work")) == {("work", ANY_JOB, s): n for s, n in expected.items()}
    assert counts_of(rqb.counts(job_name="tests.jobs.boom")) == {("work", "tests.jobs.boom", JobState.FAILED): 1,
                                                             ("work", "tests.jobs.boom", JobState.RETRYING): 1}
    assert counts_of(rqb.counts("work", by_job=True)) == {
        ("work", "tests.jobs.add", JobState.QUEUED): 1, ("work", "tests.jobs.noop", JobState.QUEUED): 1,
        ("work", "tests.jobs.noop", JobState.SCHEDULED): 1, ("work", "tests.jobs.boom", JobState.RETRYING): 1,
        ("work", "tests.jobs.add", JobState.DEFERRED): 1, ("work", "tests.jobs.boom", JobState.FAILED): 1,
        ("work", "tests.jobs.add", JobState.FINISHED): 1, ("work", "tests.jobs.noop", JobState.CANCELED): 1}
    raw = rqb.raw_counts("work")
    assert (raw[JobState.QUEUED], raw[JobState.SCHEDULED], raw[JobState.STARTED]) == (2, 2, 0)
    info = rqb.fetch_job(retrying.job_id)
    # RQ records no exception for an attempt it will retry: only the state and the attempt count say it failed
    assert info is not None and (info.state, info.attempts) == (JobState.RETRYING, 1)


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_started_job_is_counted_listed_and_not_removable(rqb: RQBackend, conn: redis.Redis, redis_url: str,
                                                          worker_class: str) -> None:
    release = f"tests:release:{uuid.uuid4()}"
    held = rqb.enqueue(JobSpec(job_name="tests.jobs.block_until_released", args=(release,), queue="slow"))
    worker = subprocess.Popen([RQ_CLI, "worker", "--url", redis_url, "--worker-class", worker_class, "slow"],
                              cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: rqb.raw_counts("slow").get(JobState.STARTED), what="the job to start")
        assert counts_of(rqb.counts("slow")) == {("slow", ANY_JOB, JobState.STARTED): 1}
        [pending] = list(rqb.iter_pending("slow"))
        assert (pending.spec.job_id, pending.state, pending.error) == (held.job_id, JobState.STARTED, None)
        assert rqb.remove_pending(held.job_id) is False
        [live] = wait_for(lambda: [w for w in rqb.workers() if w.current_job_id], what="the busy worker")
        assert (live.queues, live.current_job_id, live.state, live.pid) == (("slow",), held.job_id, "busy", live.pid)
        conn.rpush(release, "go")
        wait_for(lambda: rqb.raw_counts("slow").get(JobState.FINISHED), what="the job to finish")
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    info = rqb.fetch_job(held.job_id)
    assert info is not None and (info.state, info.result, info.attempts) == (JobState.FINISHED, "released", 1)


def test_iter_pending_round_trips_every_field(rqb: RQBackend) -> None:
    queued = full_spec()
    run_at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)
    scheduled = full_spec(run_at=run_at, at_front=True)
    deferred = full_spec(depends_on=(queued.job_id,), at_front=True)
    for spec in (queued, scheduled, deferred):
        rqb.enqueue(spec)
    found = {p.spec.job_id: p for p in rqb.iter_pending("rt")}
    assert {jid: p.spec for jid, p in found.items()} == {s.job_id: s for s in (queued, scheduled, deferred)}
    assert {jid: (p.state, p.error) for jid, p in found.items()} == {
        queued.job_id: (JobState.QUEUED, None), scheduled.job_id: (JobState.SCHEDULED, None),
        deferred.job_id: (JobState.DEFERRED, None)}
    assert all(p.enqueued_at is not None and p.enqueued_at.tzinfo for p in found.values())
    assert [p.spec.job_id for p in rqb.iter_pending(job_name="tests.jobs.noop")] == []


def test_gone_hashes_and_undecodable_payloads_are_reported(rqb: RQBackend, conn: redis.Redis) -> None:
    gone, garbled, missing_class, fine = (rqb.enqueue(JobSpec(job_name="tests.jobs.add", args=(1, 2), queue="bad"))
                                          for _ in range(4))
    conn.delete(Job.fetch(gone.job_id, connection=conn).key)  # as if its TTL had expired
    conn.hset(Job.fetch(garbled.job_id, connection=conn).key, "data", b"\x80\x05not a pickle at all")
    conn.hset(Job.fetch(missing_class.job_id, connection=conn).key, "data", MISSING_CLASS_PAYLOAD)

    found = {p.spec.job_id: p for p in rqb.iter_pending("bad")}
    assert {jid: p.spec.job_name for jid, p in found.items()} == {
        gone.job_id: UNKNOWN_FUNC, garbled.job_id: UNKNOWN_FUNC, missing_class.job_id: "tests.jobs.add",
        fine.job_id: "tests.jobs.add"}
    assert "gone" in (found[gone.job_id].error or "")
    assert "cannot be decoded" in (found[garbled.job_id].error or "")
    assert "nonexistent_mod_xyz" in (found[missing_class.job_id].error or "")
    assert found[fine.job_id].error is None and found[fine.job_id].spec.args == (1, 2)
    assert counts_of(rqb.counts("bad", by_job=True)) == {("bad", UNKNOWN_FUNC, JobState.QUEUED): 2,
                                                          ("bad", "tests.jobs.add", JobState.QUEUED): 2}
    info = rqb.fetch_job(garbled.job_id)
    assert info is not None and (info.job_name, info.state) == (UNKNOWN_FUNC, JobState.QUEUED)
    assert rqb.fetch_job(gone.job_id) is None


def test_remove_pending_takes_only_jobs_no_worker_has(rqb: RQBackend, conn: redis.Redis, redis_url: str) -> None:
    parent = rqb.enqueue(JobSpec(job_name="tests.jobs.add", args=(1, 1), queue="take"))
    child = rqb.enqueue(JobSpec(job_name="tests.jobs.add", args=(2, 2), queue="take", depends_on=(parent.job_id,)))
    later = rqb.enqueue(JobSpec(job_name="tests.jobs.noop", queue="take",
                                run_at=datetime.now(timezone.utc) + timedelta(hours=1)))
    assert [rqb.remove_pending(j.job_id) for j in (child, later)] == [True, True]
    assert rqb.remove_pending(child.job_id) is False  # exactly once
    assert rqb.remove_pending("no-such-job") is False
    assert nonzero(rqb.raw_counts("take")) == {JobState.QUEUED: 1}
    assert rqb.fetch_job(child.job_id) is None

    failing = rqb.enqueue(JobSpec(job_name="tests.jobs.boom", queue="take"))
    burst(redis_url, "take")
    assert rqb.remove_pending(parent.job_id) is False  # finished
    assert rqb.requeue_failed(parent.job_id) is False  # not failed
    assert rqb.requeue_failed(failing.job_id) is True
    assert nonzero(rqb.raw_counts("take")) == {JobState.QUEUED: 1, JobState.FINISHED: 1}
    assert rqb.remove_pending(failing.job_id) is True
    assert nonzero(rqb.raw_counts("take")) == {JobState.FINISHED: 1}


def test_enqueue_many_keeps_order_across_queues_schedules_and_dependencies(rqb: RQBackend) -> None:
    first = rqb.enqueue(JobSpec(job_name="tests.jobs.noop", queue="a"))
    specs = [JobSpec(job_name="tests.jobs.add", args=(i, i), queue="a" if i % 2 else "b") for i in range(4)]
    specs.append(JobSpec(job_name="tests.jobs.noop", queue="a", run_at=datetime.now(timezone.utc) + timedelta(hours=1)))
    specs.append(JobSpec(job_name="tests.jobs.noop", queue="b", depends_on=(first.job_id,), job_id="dep-1"))
    done = rqb.enqueue_many(specs)
    assert [(e.queue, e.job_name) for e in done] == [(s.queue, s.job_name) for s in specs]
    assert done[-1].job_id == "dep-1" and len({e.job_id for e in done}) == len(specs)
    by_id = {p.spec.job_id: p for p in rqb.iter_pending()}
    assert [(by_id[e.job_id].spec.queue, by_id[e.job_id].spec.args) for e in done[:4]] == [
        (s.queue, s.args) for s in specs[:4]]
    assert nonzero(rqb.raw_counts("a")) == {JobState.QUEUED: 3, JobState.SCHEDULED: 1}
    assert nonzero(rqb.raw_counts("b")) == {JobState.QUEUED: 2, JobState.DEFERRED: 1}
    assert rqb.queues() == ["a", "b"]


def test_unreachable_redis_is_backend_unavailable_with_masked_url() -> None:
    b = RQBackend(f"redis://app:s3cret@127.0.0.1:{free_port()}/0")
    calls = [b.ping, lambda: b.enqueue(JobSpec(job_name="tests.jobs.noop")), b.counts, lambda: list(b.iter_pending()),
             lambda: b.fetch_job("x"), b.queues, lambda: b.remove_pending("x"), b.workers]
    for call in calls:
        with pytest.raises(BackendUnavailable) as caught:
            call()
        assert caught.value.backend == "rq" and "s3cret" not in str(caught.value)
        port = b.connection.connection_pool.connection_kwargs["port"]
        assert caught.value.url == f"redis://app:***@127.0.0.1:{port}/0"


@pytest.mark.skipif(not hasattr(rq, "RateLimit"), reason="rate limits (RateLimitRegistry) exist from RQ 3.0")
def test_rq3_rate_limited_jobs_are_pending_and_removable(rqb: RQBackend, conn: redis.Redis) -> None:
    q = rq.Queue("limited", connection=conn)
    limit = rq.RateLimit("tests-limit", concurrency=1)  # type: ignore[attr-defined]
    let_through = q.enqueue("tests.jobs.add", 1, 2, rate_limit=limit)
    held_back = q.enqueue("tests.jobs.add", 3, 4, rate_limit=limit)
    assert (let_through.get_status(), held_back.get_status()) == ("queued", "rate_limited")
    assert counts_of(rqb.counts("limited")) == {("limited", ANY_JOB, JobState.QUEUED): 2}
    assert counts_of(rqb.counts(job_name="tests.jobs.add")) == {("limited", "tests.jobs.add", JobState.QUEUED): 2}
    pending = {p.spec.job_id: p.spec.args for p in rqb.iter_pending("limited")}
    assert pending == {let_through.id: (1, 2), held_back.id: (3, 4)}
    assert rqb.remove_pending(held_back.id) is True
    assert counts_of(rqb.counts()) == {("limited", ANY_JOB, JobState.QUEUED): 1}
