"""drain-check against real Redis and Postgres, real `rq worker` and `migrator worker` processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
import rq
from rq.job import Job

from adapters.base import BackendName, JobSpec, JobState, RetryPolicy
from adapters.pg_backend.backend import PostgresBackend
from adapters.rq_backend import RQBackend, maintenance
from adapters.pg_backend.routing_tables import RoutingTables
from adapters.rq_backend.workers import scheduler_holders
from migrator.drain import check as drain, strays
from migrator.routing import flag_store as flags
from migrator.drain.values import ANY_JOB, DrainReport, Place
from migrator.localservers import free_port
from tests.leaks import kill_trees
from tests.support import ROOT, run_cli, spawn_cli, subprocess_env, wait_for

RQ_CLI = str(Path(sys.executable).parent / "rq")
RQ, PG = BackendName.RQ, BackendName.POSTGRES


@pytest.fixture
def rq_workers(redis_url: str) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start real `rq worker` processes, each in a session of its own (its work horse forms yet another group)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([RQ_CLI, "worker", "--url", redis_url, *args], cwd=ROOT, env=subprocess_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        started.append(proc)
        return proc
    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)


def rq_burst(redis_url: str, *args: str) -> None:
    done = subprocess.run([RQ_CLI, "worker", "--burst", "--url", redis_url, *args], cwd=ROOT,
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def pg_burst(pg_url: str, *args: str) -> None:
    done = run_cli("worker", "--burst", *args, DATABASE_URL=pg_url)
    assert done.returncode == 0, done.stderr[-2000:]


def places(report: DrainReport, backend: BackendName, job: str | None = None) -> dict[Place, int]:
    out: dict[Place, int] = {}
    for r in report.rows:
        if r.backend is backend and (job is None or r.job_name == job):
            out[r.place] = out.get(r.place, 0) + r.count
    return out


def later(hours: int = 1) -> datetime:
    return datetime.now(timezone.utc) + timedelta(hours=hours)


# -- each registry state on the RQ side --------------------------------------------------------------------------
def _rq_queued(q: rq.Queue, redis_url: str) -> None:
    q.enqueue("tests.jobs.noop")


def _rq_scheduled(q: rq.Queue, redis_url: str) -> None:
    q.enqueue_in(timedelta(days=30), "tests.jobs.noop")  # however far ahead


def _rq_retrying(q: rq.Queue, redis_url: str) -> None:
    q.enqueue("tests.jobs.boom", retry=rq.Retry(max=2, interval=3600))
    rq_burst(redis_url, q.name)  # the first attempt fails; the retry waits an hour in the scheduled registry


def _rq_deferred(q: rq.Queue, redis_url: str) -> None:
    parent = q.enqueue_in(timedelta(hours=1), "tests.jobs.noop")
    q.enqueue("tests.jobs.add", 1, 2, depends_on=parent)


def _rq_intermediate(q: rq.Queue, redis_url: str) -> None:
    """A worker that died right after popping the job (BLMOVE) and before registering it as started."""
    q.enqueue("tests.jobs.noop")
    q.connection.lmove(q.key, q.intermediate_queue_key)


def _rq_failed_retryable(q: rq.Queue, redis_url: str) -> None:
    """A job that lands in the failed registry with attempts left (e.g. stopped): a requeue will run it."""
    job = q.enqueue("tests.jobs.boom", retry=rq.Retry(max=3))
    q.remove(job)
    job.set_status(rq.job.JobStatus.FAILED)
    q.failed_job_registry.add(job, ttl=3600)


RQ_STATES = {Place.QUEUED: _rq_queued, Place.SCHEDULED: _rq_scheduled, Place.RETRYING: _rq_retrying,
             Place.DEFERRED: _rq_deferred, Place.INTERMEDIATE: _rq_intermediate,
             Place.FAILED_RETRYABLE: _rq_failed_retryable}


@pytest.mark.parametrize("place", list(RQ_STATES), ids=str)
def test_each_rq_state_is_not_drained_and_named(rqb: RQBackend, conn: redis.Redis, redis_url: str,
                                                place: Place) -> None:
    RQ_STATES[place](rq.Queue("work", connection=conn), redis_url)
    report = drain.check_drain(rqb, None)
    assert not report.drained and places(report, RQ).get(place), report.rows
    done = run_cli("drain-check", "--backend", "rq", REDIS_URL=redis_url, DATABASE_URL=_nowhere_pg(), COLUMNS="200")
    assert done.returncode == 1, done.stderr
    assert str(place) in done.stdout and "not drained" in done.stdout


def test_started_job_of_a_live_rq_worker_is_started(rqb: RQBackend, conn: redis.Redis, rq_workers) -> None:  # type: ignore[no-untyped-def]
    release = f"tests:release:{uuid.uuid4()}"
    rq.Queue("work", connection=conn).enqueue("tests.jobs.block_until_released", release)
    rq_workers("work")
    report = wait_for(lambda: _when(drain.check_drain(rqb, None), lambda r: places(r, RQ).get(Place.STARTED)),
                      what="the job to start")
    assert [w.alive for w in report.sides[0].workers] == [True]
    conn.rpush(release, "go")
    wait_for(lambda: drain.check_drain(rqb, None).drained, what="the job to finish")
    assert places(drain.check_drain(rqb, None), RQ) == {Place.FINISHED: 1}  # listed, not pending


def test_canceled_and_finished_are_listed_not_pending(rqb: RQBackend, conn: redis.Redis, redis_url: str) -> None:
    q = rq.Queue("work", connection=conn)
    q.enqueue("tests.jobs.add", 1, 1)
    q.enqueue("tests.jobs.boom")
    rq_burst(redis_url, "work")
    q.enqueue("tests.jobs.noop").cancel()
    report = drain.check_drain(rqb, None)
    assert report.drained and report.ok
    assert places(report, RQ) == {Place.FINISHED: 1, Place.FAILED: 1, Place.CANCELED: 1}


def test_stale_started_entry_of_a_sigkilled_rq_worker(rqb: RQBackend, conn: redis.Redis, rq_workers) -> None:  # type: ignore[no-untyped-def]
    rq.Queue("work", connection=conn).enqueue("tests.jobs.block_until_released", f"tests:never:{uuid.uuid4()}")
    worker = rq_workers("work")
    wait_for(lambda: rqb.raw_counts("work").get(JobState.STARTED), what="the job to start")
    kill_trees([worker.pid])  # the worker and its work horse (RQ puts the horse in a process group of its own)
    worker.wait(30)
    report = drain.check_drain(rqb, None)
    assert places(report, RQ) == {Place.STALE: 1}
    assert not report.drained
    [dead] = report.sides[0].workers  # still registered in RQ until its key expires
    assert not dead.alive and "gone" in dead.detail
    assert {(w.kind, w.queue) for w in report.warnings} == {("stale", "work"), ("stranded", "work")}


# -- each state on the Postgres side -----------------------------------------------------------------------------
def _pg_queued(b: PostgresBackend, url: str) -> None:
    b.enqueue(JobSpec("tests.jobs.noop"))


def _pg_scheduled(b: PostgresBackend, url: str) -> None:
    b.enqueue(JobSpec("tests.jobs.noop", run_at=later(24 * 30)))


def _pg_retrying(b: PostgresBackend, url: str) -> None:
    b.enqueue(JobSpec("tests.jobs.boom", retry=RetryPolicy(2, (3600,))))
    pg_burst(url)


def _pg_deferred(b: PostgresBackend, url: str) -> None:
    parent = b.enqueue(JobSpec("tests.jobs.noop", run_at=later()))
    b.enqueue(JobSpec("tests.jobs.add", (1, 2), depends_on=(parent.job_id,)))


PG_STATES = {Place.QUEUED: _pg_queued, Place.SCHEDULED: _pg_scheduled, Place.RETRYING: _pg_retrying,
             Place.DEFERRED: _pg_deferred}


@pytest.mark.parametrize("place", list(PG_STATES), ids=str)
def test_each_postgres_state_is_not_drained_and_named(backend: PostgresBackend, pg_url: str, place: Place) -> None:
    PG_STATES[place](backend, pg_url)
    report = drain.check_drain(None, backend)
    assert not report.drained and places(report, PG).get(place), report.rows
    done = run_cli("drain-check", "--backend", "postgres", "--json", DATABASE_URL=pg_url)
    assert done.returncode == 1, done.stderr
    out = json.loads(done.stdout)
    assert not out["drained"] and any(r["state"] == str(place) and r["pending"] for r in out["remaining"])


def test_running_postgres_job_is_started(backend: PostgresBackend, pg_url: str) -> None:
    backend.enqueue(JobSpec("tests.jobs.sleep_for", (60,)))
    worker = spawn_cli("worker", "--shutdown-grace", "0", DATABASE_URL=pg_url)
    try:
        report = wait_for(lambda: _when(drain.check_drain(None, backend), lambda r: places(r, PG).get(Place.STARTED)),
                          what="the job to start")
        assert not report.drained and [w.alive for w in report.sides[0].workers] == [True]
        assert report.warnings == ()  # served: not stranded
    finally:
        worker.terminate()
        worker.wait(60)


def test_finished_postgres_jobs_are_drained(backend: PostgresBackend, pg_url: str) -> None:
    backend.enqueue(JobSpec("tests.jobs.add", (1, 2)))
    pg_burst(pg_url)
    report = drain.check_drain(None, backend)
    assert report.drained and places(report, PG) == {Place.FINISHED: 1}
    assert run_cli("drain-check", "--backend", "postgres", DATABASE_URL=pg_url).returncode == 0


# -- per job, sizes-only verdict ---------------------------------------------------------------------------------
def test_one_job_drained_while_another_still_has_jobs(rqb: RQBackend, backend: PostgresBackend, conn: redis.Redis,
                                                      redis_url: str, pg_url: str) -> None:
    rq.Queue("a", connection=conn).enqueue("tests.jobs.add", 1, 2)
    rq.Queue("b", connection=conn).enqueue("tests.jobs.noop")
    backend.enqueue(JobSpec("tests.jobs.echo", ("x",)))
    rq_burst(redis_url, "a")
    assert drain.check_drain(rqb, backend, "tests.jobs.add").drained
    noop = drain.check_drain(rqb, backend, "tests.jobs.noop")
    assert not noop.drained and [(r.queue, r.job_name, r.place) for r in noop.pending] == [
        ("b", "tests.jobs.noop", Place.QUEUED)]
    echo = drain.check_drain(rqb, backend, "tests.jobs.echo")
    assert [(r.backend, r.job_name) for r in echo.pending] == [(PG, "tests.jobs.echo")]
    env = {"REDIS_URL": redis_url, "DATABASE_URL": pg_url}
    assert run_cli("drain-check", "--job", "tests.jobs.add", **env).returncode == 0
    assert run_cli("drain-check", "--job", "tests.jobs.noop", **env).returncode == 1
    assert run_cli("drain-check", "--job", "tests.jobs.echo", "--backend", "rq", **env).returncode == 0


def test_sizes_only_verdict_and_per_job_breakdown_agree(rqb: RQBackend, conn: redis.Redis) -> None:
    q = rq.Queue("work", connection=conn)
    for i in range(30):
        q.enqueue("tests.jobs.add" if i % 3 else "tests.jobs.noop", i, i)
    sized = drain.check_drain(rqb, None, per_job=False)
    assert [(r.job_name, r.place, r.count) for r in sized.pending] == [(ANY_JOB, Place.QUEUED, 30)]
    per_job = drain.check_drain(rqb, None)
    assert {(r.job_name, r.count) for r in per_job.pending} == {("tests.jobs.add", 20), ("tests.jobs.noop", 10)}


# -- workers: stranded queues, scheduler ---------------------------------------------------------------------------
def test_stranded_queues_on_both_backends(rqb: RQBackend, backend: PostgresBackend, conn: redis.Redis, rq_workers,  # type: ignore[no-untyped-def]
                                          pg_url: str) -> None:
    rq.Queue("orphan", connection=conn).enqueue_in(timedelta(hours=1), "tests.jobs.noop")
    rq.Queue("served", connection=conn).enqueue_in(timedelta(hours=1), "tests.jobs.noop")
    backend.enqueue(JobSpec("tests.jobs.noop", queue="lonely", run_at=later()))
    backend.enqueue(JobSpec("tests.jobs.noop", queue="default", run_at=later()))
    rq_workers("--with-scheduler", "served")
    worker = spawn_cli("worker", "--queues", "default", DATABASE_URL=pg_url)
    try:
        report = wait_for(lambda: _when(drain.check_drain(rqb, backend),
                                        lambda r: all(any(w.alive for w in s.workers) for s in r.sides)),
                          what="a live worker on each side")
        stranded = {(w.backend, w.queue) for w in report.warnings if w.kind == "stranded"}
        assert stranded == {(RQ, "orphan"), (PG, "lonely")}
    finally:
        worker.terminate()
        worker.wait(60)


def test_scheduler_warning_only_without_a_live_scheduler(rqb: RQBackend, conn: redis.Redis, rq_workers) -> None:  # type: ignore[no-untyped-def]
    rq.Queue("work", connection=conn).enqueue_in(timedelta(hours=1), "tests.jobs.noop")
    plain = rq_workers("work")
    wait_for(lambda: rqb.workers(), what="the worker to register")
    report = drain.check_drain(rqb, None)
    [warning] = [w for w in report.warnings if w.kind == "no-scheduler"]
    assert warning.queue == "work" and "--with-scheduler" in warning.message
    os.killpg(plain.pid, signal.SIGTERM)
    plain.wait(60)
    rq_workers("--with-scheduler", "work")
    wait_for(lambda: scheduler_holders(conn, {"work"})["work"], what="the scheduler to take its lock")
    assert [w for w in drain.check_drain(rqb, None).warnings if w.kind == "no-scheduler"] == []


# -- stray enqueues ------------------------------------------------------------------------------------------------
def test_stray_enqueues_after_a_flip_are_reported(rqb: RQBackend, conn: redis.Redis, redis_url: str,
                                                  pg_url: str) -> None:
    pytest.importorskip("flipper", reason="routing flags need flipper-client or felipper-client")
    q = rq.Queue("work", connection=conn)
    q.enqueue("tests.jobs.add", 0, 0)  # before the flip: a job to drain, not a stray
    store = flags.FlagStore(RoutingTables(pg_url))
    store.flip("tests.jobs.add", by="test")
    for i in range(3):
        q.enqueue("tests.jobs.add", i, i)  # old code, bypassing the router
    q.enqueue("tests.jobs.noop")  # not flipped: never a stray
    rq_burst(redis_url, "work")  # the strays already ran: they are still seen in the finished registry
    timeline = strays.load_timeline(store)
    report = drain.check_drain(rqb, None, routed_since=timeline.since, bound=timedelta(0))
    assert report.drained and not report.ok and report.strays_checked
    [stray] = report.strays
    assert (stray.job_name, stray.count) == ("tests.jobs.add", 3)
    assert stray.routed_since <= stray.first_seen <= stray.last_seen
    later_bound = drain.check_drain(rqb, None, routed_since=timeline.since, bound=timedelta(hours=1))
    assert later_bound.ok and later_bound.strays == ()


# -- --wait, exit codes --------------------------------------------------------------------------------------------
def test_wait_ends_drained_when_a_worker_empties_the_queue(conn: redis.Redis, redis_url: str, pg_url: str,
                                                           tmp_path: Path) -> None:
    q = rq.Queue("work", connection=conn)
    for i in range(5):
        q.enqueue("tests.jobs.add", i, i)
    log = tmp_path / "wait.log"
    waiting = spawn_cli("drain-check", "--backend", "rq", "--wait", "--timeout", "300", "--quiet-period", "0.5",
                        log=log, REDIS_URL=redis_url, DATABASE_URL=pg_url)
    try:
        rq_burst(redis_url, "work")
        assert waiting.wait(300) == 0, log.read_text()
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert "drained" in log.read_text()


def test_wait_times_out_not_drained_with_the_table(conn: redis.Redis, redis_url: str, pg_url: str) -> None:
    rq.Queue("work", connection=conn).enqueue("tests.jobs.noop")
    done = run_cli("drain-check", "--wait", "--timeout", "0.5", "--quiet-period", "0", "--backend", "rq",
                   REDIS_URL=redis_url, DATABASE_URL=pg_url, COLUMNS="200")
    assert done.returncode == 1, done.stderr
    assert "timed out" in done.stdout and "queued" in done.stdout and "tests.jobs.noop" in done.stdout


def _nowhere_pg() -> str:
    return f"postgresql://postgres@127.0.0.1:{free_port()}/x"


@pytest.mark.parametrize("args", [("--backend", "rq"), (), ("--backend", "all")], ids=["rq", "default", "all"])
def test_unreachable_redis_exits_2_with_one_line(pg_url: str, args: tuple[str, ...]) -> None:
    done = run_cli("drain-check", *args, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", DATABASE_URL=pg_url)
    assert done.returncode == 2
    assert done.stderr.startswith("error: rq is unreachable") and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [("--backend", "postgres"), ("--backend", "all")], ids=["postgres", "all"])
def test_unreachable_postgres_exits_2_with_one_line(redis_url: str, args: tuple[str, ...]) -> None:
    done = run_cli("drain-check", *args, REDIS_URL=redis_url, DATABASE_URL=_nowhere_pg())
    assert done.returncode == 2
    assert done.stderr.startswith("error: postgres is unreachable") and len(done.stderr.strip().splitlines()) == 1


def test_default_is_the_legacy_backend_the_question_before_removing_rq(backend: PostgresBackend, redis_url: str,
                                                                       pg_url: str) -> None:
    """After the migration the new backend is busy for good: a bare drain-check asks about RQ alone."""
    backend.enqueue(JobSpec("tests.jobs.echo", ("still running here",)))
    env = {"REDIS_URL": redis_url, "DATABASE_URL": pg_url}
    bare = run_cli("drain-check", **env)
    assert bare.returncode == 0, bare.stdout + bare.stderr
    assert "nothing of all jobs left on rq" in bare.stdout and "postgres:" not in bare.stdout
    everything = run_cli("drain-check", "--backend", "all", **env)
    assert everything.returncode == 1 and "not drained: 1 jobs remain (rq 0, postgres 1)" in everything.stdout


def test_rq_alone_checks_without_postgres_and_says_strays_were_not_checked(redis_url: str) -> None:
    done = run_cli("drain-check", "--backend", "rq", REDIS_URL=redis_url, DATABASE_URL=_nowhere_pg())
    assert done.returncode == 0, done.stderr
    assert "stray enqueues not checked" in done.stdout


@pytest.mark.parametrize("args", [("--backend", "mysql"), ("--wait", "--timeout", "-1")], ids=["backend", "timeout"])
def test_bad_arguments_exit_2_with_one_line(redis_url: str, pg_url: str, args: tuple[str, ...]) -> None:
    done = run_cli("drain-check", *args, REDIS_URL=redis_url, DATABASE_URL=pg_url)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1


def _when(report: DrainReport, test: Callable[[DrainReport], object]) -> DrainReport | None:
    return report if test(report) else None


def test_running_job_of_a_dead_migrator_worker_is_stale(backend: PostgresBackend, pg_url: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    backend.enqueue(JobSpec("tests.jobs.write_pid_then_sleep", (str(pid_file), 30), job_id="held"))
    worker = spawn_cli("worker", DATABASE_URL=pg_url)
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the job to start")
    live = drain.check_drain(None, backend)
    assert [(r.job_name, r.place) for r in live.pending] == [("tests.jobs.write_pid_then_sleep", Place.STARTED)]
    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
    worker.wait(10)
    # Postgres frees the dead session's lock once it notices the closed socket: a moment, not an instant
    dead = wait_for(lambda: (r := drain.check_drain(None, backend)).pending[0].place is Place.STALE and r,
                    what="the dead worker's lock to be released")
    assert [(r.job_name, r.place, r.count) for r in dead.pending] == [("tests.jobs.write_pid_then_sleep", Place.STALE, 1)]
    assert not dead.drained
    assert [w.kind for side in dead.sides for w in side.warnings] == ["stranded", "stale"]


def test_a_maintenance_lock_left_by_a_dead_worker_is_named_and_a_transfer_releases_it(  # type: ignore[no-untyped-def]
        rqb: RQBackend, conn: redis.Redis, rq_workers, pg_url: str, redis_url: str) -> None:
    """An RQ worker that dies mid-maintenance (SIGKILL, or Redis crashing under it) leaves RQ's maintenance lock for
    15 minutes: no worker retries the jobs abandoned meanwhile. Drain-check names it; a transfer releases it."""
    key = f"tests:release:{uuid.uuid4()}"
    job = rq.Queue("work", connection=conn).enqueue("tests.jobs.block_until_released", key, retry=rq.Retry(max=1))
    worker = rq_workers("work")
    wait_for(lambda: rqb.raw_counts("work").get(JobState.STARTED), what="the job to start")
    # The worker and its work horse, mid-job: the job is abandoned. Not killpg: RQ's horse calls setpgrp, and a horse
    # left alive would take the test's "go" below and finish the job itself.
    kill_trees([worker.pid])
    worker.wait(30)
    started = rq.registry.StartedJobRegistry("work", connection=conn)
    # What minutes bring, without waiting them: the abandoned job's last heartbeat is older than RQ's 60 s
    # allowance, and the lock a dying worker left was taken 130 s ago (RQ's own SET ... NX EX 899).
    conn.zadd(started.key, {member: 1 for member in conn.zrange(started.key, 0, -1)})
    conn.set(maintenance.lock_key("work"), 1, ex=maintenance.LOCK_SECONDS - 130)
    report = drain.check_drain(rqb, None)
    assert places(report, RQ) == {Place.STALE: 1}
    [left] = [w for w in report.warnings if w.kind == "uncleaned"]
    assert left.queue == "work" and "lock" in left.message

    rq_workers("--burst", "work").wait(60)  # RQ's maintenance is kept off by the lock: the job stays abandoned
    assert places(drain.check_drain(rqb, None), RQ) == {Place.STALE: 1}

    done = run_cli("transfer", "--from", "rq", "--to", "postgres", "--all", REDIS_URL=redis_url, DATABASE_URL=pg_url)
    assert done.returncode == 0, done.stderr
    assert "released RQ's maintenance lock of queue 'work'" in done.stderr
    assert not conn.exists(maintenance.lock_key("work"))

    conn.rpush(key, "go")  # the retried run may go straight through
    rq_workers("--burst", "work").wait(60)  # maintenance retries the abandoned job (retries left), then runs it
    assert Job.fetch(job.id, connection=conn).get_status() == "finished"
    after = drain.check_drain(rqb, None)
    assert after.drained and places(after, RQ) == {Place.FINISHED: 1}


def test_a_fresh_maintenance_lock_is_left_alone(conn: redis.Redis) -> None:
    """A lock a live worker just took (its cleaning takes under a second) is neither named nor released."""
    conn.set(maintenance.lock_key("work"), 1, ex=maintenance.LOCK_SECONDS - 5)
    assert maintenance.left_locks(conn, ["work"]) == []
    assert maintenance.release_left_locks(conn, ["work"]) == []
    assert conn.exists(maintenance.lock_key("work"))
