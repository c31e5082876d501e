"""`migrator transfer` on real Redis and Postgres: every state both ways, refusals, dry runs, a crash at every
step, and SIGKILLed transfers racing a live RQ worker, checked against a ledger of runs."""
from __future__ import annotations

import json
import os
import random
import signal
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from rq import Retry
from rq.job import Job

from adapters.base import JobSpec, JobState, RetryPolicy
from adapters.pg_backend import sql as named
from adapters.pg_backend import transfer as pg_side
from adapters.pg_backend.worker import Worker
from adapters.pg_backend.worker_options import WorkerOptions
from adapters.rq_backend import transfer as rq_side
from migrator.transfer import run as transfer
from migrator.transfer.values import Direction
from tests.support import QuietSimpleWorker, ledger_counts, run_cli, spawn_cli, spawn_rq_worker, wait_for

TO_PG, TO_RQ = Direction.TO_POSTGRES, Direction.TO_RQ
OPTIONS = dict(args=(1, "a"), kwargs={"k": [2, 3]}, timeout=77, result_ttl=11, ttl=3600, failure_ttl=99,
               retry=Retry(max=3, interval=[5, 10]), meta={"m": 1}, description="desc")


@pytest.fixture
def legacy(rqb):
    return rqb


def pg_spec(backend, job_id):
    return next(j for j in backend.iter_pending() if j.spec.job_id == job_id)


def in_transit(legacy, backend) -> tuple[int, int, int]:
    """What a transfer still holds: Redis holding hash, Redis landed set, Postgres transfer rows."""
    with psycopg.connect(backend.url) as conn:
        rows = conn.execute("SELECT count(*) FROM migrator_transfers").fetchone()[0]
    return legacy.connection.hlen(rq_side.HOLDING), legacy.connection.scard(rq_side.LANDED), rows


def assert_options_kept(spec):
    assert (spec.job_name, spec.args, dict(spec.kwargs)) == ("tests.jobs.echo", (1, "a"), {"k": [2, 3]})
    assert (spec.timeout, spec.result_ttl, spec.ttl, spec.failure_ttl) == (77, 11, 3600, 99)
    assert spec.retry == RetryPolicy(3, (5, 10))
    assert (dict(spec.meta), spec.description) == ({"m": 1}, "desc")


def test_rq_to_postgres_moves_each_state_keeping_id_options_and_time(legacy, backend):
    q = legacy.queue("default")
    when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    q.enqueue_call("tests.jobs.echo", job_id="queued-1", **OPTIONS)
    q.enqueue_at(when, "tests.jobs.echo", job_id="sched-1", job_timeout=77, result_ttl=11, ttl=3600, failure_ttl=99,
                 retry=OPTIONS["retry"], meta={"m": 1}, description="desc", args=OPTIONS["args"],
                 kwargs=OPTIONS["kwargs"])
    # A deferred job whose parent already lives in Postgres: Postgres can express that wait.
    q.enqueue_call("tests.jobs.noop", job_id="parent-1")
    q.enqueue_call("tests.jobs.noop", job_id="child-1", depends_on="parent-1")
    backend.enqueue(JobSpec("tests.jobs.noop", job_id="parent-1", run_at=when))
    assert legacy.remove_pending("parent-1")

    report = transfer.transfer_pending(legacy, backend, TO_PG)

    assert report.refused == () and report.total_moved == 3
    assert {(m.state, m.count) for m in report.moved} == {(JobState.QUEUED, 1), (JobState.SCHEDULED, 1),
                                                         (JobState.DEFERRED, 1)}
    queued, sched, child = (pg_spec(backend, i) for i in ("queued-1", "sched-1", "child-1"))
    assert queued.state is JobState.QUEUED and sched.state is JobState.SCHEDULED
    assert_options_kept(queued.spec)
    assert_options_kept(sched.spec)
    assert sched.spec.run_at == when
    assert child.state is JobState.DEFERRED and child.spec.depends_on == ("parent-1",)
    assert [c for c in legacy.counts() if c.count] == []
    assert not any(Job.exists(i, connection=legacy.connection) for i in ("queued-1", "sched-1", "child-1"))
    assert in_transit(legacy, backend) == (0, 0, 0)


def test_postgres_to_rq_moves_queued_and_scheduled_keeping_id_options_and_time(legacy, backend, redis_url):
    when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    common = dict(job_name="tests.jobs.echo", args=(1, "a"), kwargs={"k": [2, 3]}, timeout=77, result_ttl=11, ttl=3600,
                  failure_ttl=99, retry=RetryPolicy(3, (5, 10)), meta={"m": 1}, description="desc")
    backend.enqueue(JobSpec(job_id="queued-1", **common))
    backend.enqueue(JobSpec(job_id="sched-1", run_at=when, **common))

    report = transfer.transfer_pending(legacy, backend, TO_RQ)

    assert report.refused == () and report.total_moved == 2
    assert backend.fetch_job("queued-1") is None and backend.fetch_job("sched-1") is None
    rq_jobs = {j.spec.job_id: j for j in legacy.iter_pending()}
    assert rq_jobs["queued-1"].state is JobState.QUEUED and rq_jobs["sched-1"].state is JobState.SCHEDULED
    assert_options_kept(rq_jobs["queued-1"].spec)
    assert_options_kept(rq_jobs["sched-1"].spec)
    assert rq_jobs["sched-1"].spec.run_at == when
    assert in_transit(legacy, backend) == (0, 0, 0)
    QuietSimpleWorker([legacy.queue("default")], connection=legacy.connection).work(burst=True)
    assert Job.fetch("queued-1", connection=legacy.connection).return_value() == {"args": [1, "a"],
                                                                                   "kwargs": {"k": [2, 3]}}


def test_postgres_to_rq_leaves_dependency_chains_and_retries_on_postgres(legacy, backend):
    backend.enqueue(JobSpec("tests.jobs.noop", job_id="parent-1", run_at=datetime.now(timezone.utc) + timedelta(hours=1)))
    backend.enqueue(JobSpec("tests.jobs.noop", job_id="child-1", depends_on=("parent-1",)))
    backend.enqueue(JobSpec("tests.jobs.noop", job_id="free-1"))
    report = transfer.transfer_pending(legacy, backend, TO_RQ)
    reasons = {r.job_id: r.reason for r in report.refused}
    assert set(reasons) == {"parent-1", "child-1"} and "wait on it" in reasons["parent-1"]
    assert "waits on jobs in postgres" in reasons["child-1"]
    assert backend.fetch_job("parent-1") is not None and backend.fetch_job("child-1") is not None
    assert report.total_moved == 1 and Job.exists("free-1", connection=legacy.connection)


def test_refused_jobs_stay_in_rq_with_their_reason(legacy, backend, redis_url, pg_url):
    from tests.jobs import Opaque
    q = legacy.queue("default")
    q.enqueue_call("tests.jobs.echo", args=(Opaque(1),), job_id="opaque-1")
    q.enqueue_call("tests.jobs.noop", job_id="meta-1", meta={"o": Opaque(2)})
    q.enqueue_call("tests.jobs.noop", job_id="fine-1")

    done = run_cli("transfer", "--all", "--json", REDIS_URL=redis_url, DATABASE_URL=pg_url)

    assert done.returncode == 1, done.stderr
    assert "2 jobs cannot be moved and stay in rq" in done.stderr
    out = json.loads(done.stdout)
    reasons = {r["job_id"]: r["reason"] for r in out["refused"]}
    assert "args[0] is a tests.jobs.Opaque" in reasons["opaque-1"]
    assert "meta['o'] is a tests.jobs.Opaque" in reasons["meta-1"]
    assert out["moved_total"] == 1 and backend.fetch_job("fine-1") is not None
    assert q.get_job_ids() == ["opaque-1", "meta-1"]
    assert in_transit(legacy, backend) == (0, 0, 0)


def test_an_id_the_app_enqueues_while_it_is_moved_stays_in_rq_not_lost(monkeypatch, legacy, backend):
    """The app's insert lands between the land's check and its COPY: the COPY fails, the chunk is checked again,
    and the moved job is refused as a conflict (released back to RQ), never counted as landed."""
    q = legacy.queue("default")
    for i in range(3):
        q.enqueue_call("tests.jobs.noop", job_id=f"race-{i}")
    insert, raced = backend.enqueue_many, []

    def app_wins(specs, conn=None, **options):
        if not raced:
            raced.append(backend.enqueue(JobSpec("tests.jobs.echo", job_id="race-1")))  # its own connection
        return insert(specs, conn=conn, **options)

    monkeypatch.setattr(backend, "enqueue_many", app_wins)
    report = transfer.transfer_pending(legacy, backend, TO_PG)

    assert raced and report.total_moved == 2
    assert [(r.job_id, r.reason) for r in report.refused] == [
        ("race-1", "postgres already has a different job with this id")]
    assert pg_spec(backend, "race-1").spec.job_name == "tests.jobs.echo"
    assert q.get_job_ids() == ["race-1"] and Job.fetch("race-1", connection=legacy.connection).func_name == \
        "tests.jobs.noop"
    assert in_transit(legacy, backend) == (0, 0, 0)


def test_dry_run_counts_per_job_and_state_and_moves_nothing(legacy, backend, redis_url, pg_url):
    q = legacy.queue("default")
    for i in range(3):
        q.enqueue_call("tests.jobs.noop", job_id=f"n{i}")
    q.enqueue_in(timedelta(hours=1), "tests.jobs.add", 1, 2, job_id="a1")
    before = q.get_job_ids()

    done = run_cli("transfer", "--all", "--dry-run", "--json", REDIS_URL=redis_url, DATABASE_URL=pg_url)

    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["dry_run"] and out["moved"] == [{"job": "tests.jobs.add", "state": "scheduled", "count": 1},
                                               {"job": "tests.jobs.noop", "state": "queued", "count": 3}]
    assert q.get_job_ids() == before and q.scheduled_job_registry.get_job_ids() == ["a1"]
    assert list(backend.iter_pending()) == []
    human = run_cli("transfer", "--all", "--dry-run", REDIS_URL=redis_url, DATABASE_URL=pg_url)
    assert "would move 4 jobs" in human.stdout and "tests.jobs.noop" in human.stdout


def test_job_option_moves_that_job_name_only_and_bad_options_exit_2(legacy, backend, redis_url, pg_url):
    q = legacy.queue("default")
    q.enqueue_call("tests.jobs.noop", job_id="n1")
    q.enqueue_call("tests.jobs.add", args=(1, 2), job_id="a1")
    done = run_cli("transfer", "--job", "tests.jobs.add", REDIS_URL=redis_url, DATABASE_URL=pg_url)
    assert done.returncode == 0, done.stderr
    assert backend.fetch_job("a1") is not None and backend.fetch_job("n1") is None
    assert q.get_job_ids() == ["n1"]
    for args in (["transfer"], ["transfer", "--all", "--job", "x"], ["transfer", "--all", "--from", "rq", "--to", "rq"],
                 ["transfer", "--all", "--chunk-size", "0"], ["transfer", "--all", "--from", "bogus"]):
        bad = run_cli(*args, REDIS_URL=redis_url, DATABASE_URL=pg_url)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr


def test_scheduled_job_due_now_is_left_to_rqs_scheduler(legacy, backend):
    legacy.queue("default").enqueue_in(timedelta(seconds=2), "tests.jobs.noop", job_id="soon-1")
    report = transfer.transfer_pending(legacy, backend, TO_PG)
    assert report.waiting == 1 and report.total_moved == 0
    assert legacy.queue("default").scheduled_job_registry.get_job_ids() == ["soon-1"]


class Killed(BaseException):
    """Stands for SIGKILL at one exact step: nothing after it runs."""


RQ_TO_PG_STEPS = [(rq_side, "start_claim"), (pg_side, "land"), (rq_side, "finish"), (pg_side, "forget_landed")]
PG_TO_RQ_STEPS = [(pg_side, "take"), (rq_side, "land"), (pg_side, "forget_held"), (rq_side, "forget_landed")]


def die_after(monkeypatch, module, name):
    real = getattr(module, name)

    def step(*args, **kwargs):
        real(*args, **kwargs)
        raise Killed(name)

    monkeypatch.setattr(module, name, step)


def run_pg_worker(pg_url):
    Worker(pg_url, WorkerOptions(burst=True, poll_seconds=0.1)).run()


@pytest.mark.parametrize("module,step", RQ_TO_PG_STEPS, ids=[s for _, s in RQ_TO_PG_STEPS])
def test_rq_to_postgres_killed_after_each_step_completes_exactly_once(monkeypatch, legacy, backend, ledger_url,
                                                                     module, step):
    """Between the crash and the re-run a Postgres worker runs (and, result_ttl 0, deletes) what landed."""
    q = legacy.queue("default")
    for i in range(30):
        q.enqueue_call("tests.jobs.ledger", args=(f"k{i}",), job_id=f"j{i}", result_ttl=0)
    with monkeypatch.context() as m:
        die_after(m, module, step)
        with pytest.raises(Killed):
            transfer.transfer_pending(legacy, backend, TO_PG)
    run_pg_worker(ledger_url)
    transfer.transfer_pending(legacy, backend, TO_PG)
    run_pg_worker(ledger_url)
    assert ledger_counts(ledger_url) == {f"k{i}": 1 for i in range(30)}
    assert in_transit(legacy, backend) == (0, 0, 0)
    assert [c for c in legacy.counts() if c.count] == []


@pytest.mark.parametrize("module,step", PG_TO_RQ_STEPS, ids=[s for _, s in PG_TO_RQ_STEPS])
def test_postgres_to_rq_killed_after_each_step_completes_exactly_once(monkeypatch, legacy, backend, ledger_url,
                                                                     module, step):
    """Between the crash and the re-run an RQ worker runs (and, result_ttl 0, deletes) what landed."""
    backend.enqueue_many([JobSpec("tests.jobs.ledger", args=(f"k{i}",), job_id=f"j{i}", result_ttl=0)
                          for i in range(30)])
    with monkeypatch.context() as m:
        die_after(m, module, step)
        with pytest.raises(Killed):
            transfer.transfer_pending(legacy, backend, TO_RQ)
    worker = QuietSimpleWorker([legacy.queue("default")], connection=legacy.connection)
    worker.work(burst=True)
    transfer.transfer_pending(legacy, backend, TO_RQ)
    worker.work(burst=True)
    run_pg_worker(ledger_url)
    assert ledger_counts(ledger_url) == {f"k{i}": 1 for i in range(30)}
    assert in_transit(legacy, backend) == (0, 0, 0)


def test_every_transfer_query_runs(pg_url):
    queries = named.queries("public", "transfer.sql")
    params = {"key": 1, "ids": '["x"]', "held": '["x"]', "func": None}  # id lists as JSON text (transfer.sql)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for name, text in queries.items():
            conn.execute(text, params)
            conn.execute("SELECT pg_advisory_unlock_all()")


ROUNDS, PER_ROUND = 20, 1500


def test_sigkilled_transfers_racing_an_rq_worker_lose_nothing_and_run_nothing_twice(legacy, backend, redis_url,
                                                                                  ledger_url, tmp_path):
    """Each round: enqueue, start `transfer --all` as a real process, SIGKILL it at a random instant, run it again
    to completion, while an RQ worker drains the same queue. Then a migrator worker drains Postgres. Every other
    round moves in steps of 300 (--chunk-size): seven steps, several in flight at once (claimed, landing, cleaned
    up) when the kill comes."""
    env = dict(REDIS_URL=redis_url, DATABASE_URL=ledger_url)
    rng = random.Random(4)
    rq_worker = spawn_rq_worker(redis_url, "default", simple=True, MIGRATOR_TEST_SIDE="rq")
    spans, mid, mid_in_steps = [], 0, 0
    try:
        for rnd in range(ROUNDS):
            steps = ["--chunk-size", "300"] if rnd % 2 else []
            enqueue_round(legacy, rnd)
            before = moved_now(backend)
            # The race that matters is the moving against the worker, not the CLI's start-up (1-2 s under load, in
            # which the worker could drain the whole round): the worker is paused until jobs start to move.
            os.kill(rq_worker.pid, signal.SIGSTOP)
            proc = spawn_cli("transfer", "--all", "--json", *steps, log=tmp_path / "transfer.log", **env)
            # The kill window is the moving itself, not the process's start-up (which a faster transfer makes
            # most of its life): wait until jobs start to move, then kill within the first round's moving span.
            try:
                started = wait_for(lambda: (moved_now(backend) > before or sum(in_transit(legacy, backend)) > 0
                                            or proc.poll() is not None) and time.monotonic(),
                                   timeout=60, interval=0.002, what="the transfer to move jobs")
            finally:
                os.kill(rq_worker.pid, signal.SIGCONT)
            if spans:  # the first round runs whole: how long its moving takes here sets the kill window
                time.sleep(rng.uniform(0, max(spans)))
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=120)
                partly = moved_now(backend) > before and legacy.queue("default").count > 0
                landed_mid = sum(in_transit(legacy, backend)) > 0 or partly
                mid += landed_mid
                mid_in_steps += landed_mid and bool(steps)
            proc.wait(timeout=120)
            spans.append(time.monotonic() - started)
            finish = run_cli("transfer", "--all", "--json", **env)
            assert finish.returncode == 0, finish.stderr
            assert in_transit(legacy, backend) == (0, 0, 0)
        wait_for(lambda: rq_drained(legacy), timeout=300, what="the RQ worker to drain its queue")
    finally:
        rq_worker.send_signal(signal.SIGKILL)
        rq_worker.wait()
    pg_worker = run_cli("worker", "--burst", "--concurrency", "4", timeout=600, MIGRATOR_TEST_SIDE="pg", **env)
    assert pg_worker.returncode == 0, pg_worker.stderr
    counts = ledger_counts(ledger_url)
    expected = {f"r{r}-{i}" for r in range(ROUNDS) for i in range(PER_ROUND)}
    assert set(counts) == expected, f"lost: {len(expected - set(counts))}"
    assert {k: n for k, n in counts.items() if n != 1} == {}
    assert mid > 0, "no kill landed while a transfer was under way: raise PER_ROUND"
    assert mid_in_steps > 0, "no kill landed while a transfer moved in small steps"


def enqueue_round(legacy, rnd):
    q = legacy.queue("default")
    with legacy.connection.pipeline() as pipe:
        data = [q.prepare_data("tests.jobs.ledger_reused", args=(f"r{rnd}-{i}",), result_ttl=0)
                for i in range(PER_ROUND)]
        q.enqueue_many(data, pipeline=pipe)
        pipe.execute()


def moved_now(backend) -> int:
    with psycopg.connect(backend.url) as conn:
        return conn.execute("SELECT count(*) FROM migrator_jobs").fetchone()[0]


def rq_drained(legacy) -> bool:
    return all(c.count == 0 for c in legacy.counts() if c.state in (JobState.QUEUED, JobState.STARTED))


PG_ROUNDS, PG_PER_ROUND = 8, 2500


def test_sigkilled_transfers_to_rq_racing_a_migrator_worker_lose_nothing_and_run_nothing_twice(
        legacy, backend, redis_url, ledger_url, tmp_path):
    """The mirror: jobs move postgres -> rq while a migrator worker drains the same queue; each round's
    transfer is SIGKILLed at a random instant and run again; then an RQ worker drains RQ."""
    env = dict(REDIS_URL=redis_url, DATABASE_URL=ledger_url)
    rng = random.Random(11)
    pg_worker = spawn_cli("worker", "--batch", "10", MIGRATOR_TEST_SIDE="pg", **env)
    spans: list[float] = []
    mid = 0
    try:
        for rnd in range(PG_ROUNDS):
            backend.enqueue_many([JobSpec("tests.jobs.ledger_reused", (f"p{rnd}-{i}",), result_ttl=0)
                                  for i in range(PG_PER_ROUND)])
            os.kill(pg_worker.pid, signal.SIGSTOP)  # as above: the worker races the moving, not the start-up
            proc = spawn_cli("transfer", "--all", "--from", "postgres", "--to", "rq", "--json",
                             log=tmp_path / "transfer.log", **env)
            # As above: the kill window is the moving, not the start-up; moving has begun once jobs are in transit
            # or in RQ (the process may also have finished first: then its whole life was the window).
            try:
                started = wait_for(lambda: (sum(in_transit(legacy, backend)) > 0 or legacy.queue("default").count > 0
                                            or proc.poll() is not None) and time.monotonic(),
                                   timeout=60, interval=0.002, what="the transfer to move jobs")
            finally:
                os.kill(pg_worker.pid, signal.SIGCONT)
            if spans:
                time.sleep(rng.uniform(0, max(spans)))
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=120)
                queued_pg = sum(c.count for c in backend.counts() if c.state is JobState.QUEUED)
                mid += sum(in_transit(legacy, backend)) > 0 or (legacy.queue("default").count > 0 and queued_pg > 0)
            proc.wait(timeout=120)
            spans.append(time.monotonic() - started)
            finish = run_cli("transfer", "--all", "--from", "postgres", "--to", "rq", "--json", **env)
            assert finish.returncode in (0, 1), finish.stderr  # 1: jobs a worker had already started stay
            assert in_transit(legacy, backend) == (0, 0, 0)
        wait_for(lambda: not [c for c in backend.counts() if c.state in (JobState.QUEUED, JobState.STARTED)],
                 timeout=300, what="the migrator worker to drain Postgres")
    finally:
        pg_worker.terminate()
        pg_worker.wait(30)
    rq_worker = spawn_rq_worker(redis_url, "--burst", "default", simple=True, MIGRATOR_TEST_SIDE="rq")
    assert rq_worker.wait(600) == 0
    counts = ledger_counts(ledger_url)
    expected = {f"p{r}-{i}" for r in range(PG_ROUNDS) for i in range(PG_PER_ROUND)}
    assert set(counts) == expected, f"lost: {len(expected - set(counts))}"
    assert {k: n for k, n in counts.items() if n != 1} == {}
    assert mid > 0, "no kill landed while a transfer was under way: raise PG_PER_ROUND"
