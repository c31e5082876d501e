"""A router that remembers an outage: Postgres or Redis really stopped under a live router, enqueues fall back (or
fail fast) without trying the dead backend again, a probe finds it back; the router's own fallback jobs are told
apart from stray enqueues by drain-check."""
from __future__ import annotations

import subprocess
import threading
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import rq

from adapters.base import BackendName, BackendUnavailable, JobSpec, JobState
from adapters.pg_backend import schema
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.routing_tables import RoutingTables
from adapters.rq_backend import RQBackend
from migrator import Queue
from migrator.drain import check as drain, strays
from migrator.localservers import LocalPostgres, LocalRedis, free_port
from migrator.routing.cache import CachedFlags
from migrator.routing.flag_store import FlagStore
from migrator.routing.in_doubt import Doubts, held_until
from migrator.routing.router import FALLBACK_META, Router
from tests import jobs
from tests.faults import CuttingRelay
from tests.support import ROOT, subprocess_env, wait_for

pytest.importorskip("flipper", reason="routing flags need flipper-client or felipper-client")
PG, RQ = BackendName.POSTGRES, BackendName.RQ
JOB = "tests.jobs.add"


@pytest.fixture
def own_pg() -> Iterator[LocalPostgres]:
    """A Postgres of this test's own, to stop and start again (in a folder of its own: pytest's tmp_path is not
    always reachable by the unprivileged user Postgres runs as)."""
    with tempfile.TemporaryDirectory(prefix="migrator-outage-") as d:
        server = LocalPostgres(Path(d) / "pg", durable=True).start()  # a crash must not forget commits
        try:
            schema.migrate(server.url)
            yield server
        finally:
            server.stop("immediate")


@pytest.fixture
def own_redis() -> Iterator[LocalRedis]:
    with tempfile.TemporaryDirectory(prefix="migrator-outage-") as d:
        server = LocalRedis(Path(d) / "redis").start()
        try:
            yield server
        finally:
            server.stop()


def flipped_router(legacy: RQBackend, pg_url: str, fallback: bool, new_url: str | None = None) -> Router:
    FlagStore(RoutingTables(pg_url)).flip(JOB, by="test")
    flags = CachedFlags(FlagStore(RoutingTables(pg_url)), 0.1).start()
    router = Router(legacy, PostgresBackend(new_url or pg_url), flags, fallback=fallback)
    wait_for(lambda: router.decide(JOB).backend is PG, what="the flip to reach the router")
    return router


def test_postgres_stopped_enqueues_fall_back_at_once_and_return_when_it_is_back(own_pg, redis_url):
    router = flipped_router(RQBackend(redis_url), own_pg.url, fallback=True)
    q = Queue("default", router=router)
    try:
        assert q.enqueue(jobs.add, 0, 0).backend is PG
        own_pg.stop("immediate")
        during = [q.enqueue(jobs.add, i, i) for i in range(1, 21)]
        assert {h.backend for h in during} == {RQ}
        assert router.breakers[PG].outage() is not None  # remembered: later enqueues did not try Postgres
        own_pg.start()
        wait_for(lambda: router.breakers[PG].outage() is None, timeout=60, what="the probe to find Postgres back")
        assert q.enqueue(jobs.add, 99, 99).backend is PG
    finally:
        router.close()
    legacy_queue = rq.Queue("default", connection=redis.Redis.from_url(redis_url))
    queued, held = legacy_queue.get_jobs(), legacy_queue.scheduled_job_registry.get_job_ids()
    assert sorted([j.id for j in queued] + held) == sorted(h.id for h in during)  # nothing lost, nothing twice
    assert all(FALLBACK_META in j.meta for j in queued)
    # The first enqueue of the outage broke on a connection it had used: in doubt, its copy in RQ is held a while
    # (Postgres, back, did not have it: it runs when the hold ends); the others never reached Postgres.
    assert held == [during[0].id]
    pending = PostgresBackend(own_pg.url)
    try:
        assert len(list(pending.iter_pending())) == 2
    finally:
        pending.close()


def test_without_fallback_an_outage_fails_fast_with_the_remembered_error(own_pg, redis_url):
    router = flipped_router(RQBackend(redis_url), own_pg.url, fallback=False)
    q = Queue("default", router=router)
    try:
        own_pg.stop("immediate")
        with pytest.raises(BackendUnavailable) as first:
            q.enqueue(jobs.add, 1, 1)
        with pytest.raises(BackendUnavailable) as second:
            q.enqueue(jobs.add, 2, 2)
        assert second.value is first.value  # the same outage: no new attempt was made
        assert "postgres is unreachable" in str(second.value)
    finally:
        router.close()


def test_redis_stopped_legacy_enqueues_fall_back_to_postgres(own_redis, pg_url):
    flags = CachedFlags(FlagStore(RoutingTables(pg_url)), 0.1).start()
    router = Router(RQBackend(own_redis.url), PostgresBackend(pg_url), flags, fallback=True)
    q = Queue("default", router=router)
    try:
        assert q.enqueue(jobs.noop).backend is RQ
        own_redis.stop()
        assert {q.enqueue(jobs.noop).backend for _ in range(5)} == {PG}
        assert router.breakers[RQ].outage() is not None
        own_redis.start()
        wait_for(lambda: router.breakers[RQ].outage() is None, timeout=60, what="the probe to find Redis back")
        assert q.enqueue(jobs.noop).backend is RQ
    finally:
        router.close()


def rq_burst(redis_url: str) -> None:
    rq_cli = str(Path(sys.executable).with_name("rq"))
    done = subprocess.run([rq_cli, "worker", "--burst", "--url", redis_url, "default"], cwd=ROOT,
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_fallback_jobs_are_router_enqueues_not_strays(rqb, redis_url, pg_url):
    """Postgres unreachable for the router (a port nobody listens on), the flag store fine: the flipped job goes to
    RQ on purpose. drain-check counts it pending until it runs, names it, and does not call it a stray."""
    router = flipped_router(RQBackend(redis_url), pg_url, fallback=True,
                            new_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    try:
        assert Queue("default", router=router).enqueue(jobs.add, 1, 2).backend is RQ
    finally:
        router.close()
    timeline = strays.load_timeline(FlagStore(RoutingTables(pg_url)))
    pending = drain.check_drain(rqb, None, routed_since=timeline.since, bound=timedelta(0))
    assert not pending.drained and pending.strays == ()
    [back] = pending.routed_back
    assert (back.job_name, back.why, back.count) == (JOB, "fallback", 1)
    rq_burst(redis_url)
    done = drain.check_drain(rqb, None, routed_since=timeline.since, bound=timedelta(0))
    assert done.ok and done.strays_checked and done.strays == ()
    assert [(t.job_name, t.why) for t in done.routed_back] == [(JOB, "fallback")]


def test_an_enqueue_whose_commit_reply_is_lost_runs_once(rqb, redis_url, pg_url):
    """Postgres commits the job and the connection breaks before the app reads the reply: the router cannot tell,
    so the fallback copy it puts in RQ is held; once the probe finds Postgres back, it sees the job there and removes
    the held copy. One job, on Postgres; the app saw no error."""
    relay = CuttingRelay(pg_url)
    router = flipped_router(RQBackend(redis_url), pg_url, fallback=True, new_url=relay.url)
    q = Queue("default", router=router)
    new = PostgresBackend(pg_url)
    try:
        assert q.enqueue(jobs.add, 0, 0).backend is PG  # the pool's one connection runs through the relay
        relay.arm()
        handle = q.enqueue(jobs.add, 1, 1)
        assert relay.cut.is_set() and handle.backend is RQ
        held = rq.job.Job.fetch(handle.id, connection=redis.Redis.from_url(redis_url))
        assert held.get_status() == "scheduled" and held.meta[FALLBACK_META]["in_doubt"] is True
        assert new.fetch_job(handle.id) is not None  # Postgres did commit it: without the hold, two copies
        wait_for(lambda: router.doubts.pending() == 0, timeout=60, what="the probe to settle the enqueue in doubt")
        assert rqb.fetch_job(handle.id) is None
        assert new.fetch_job(handle.id).state is JobState.QUEUED
    finally:
        router.close()
        new.close()
        relay.close()


def test_settling_keeps_exactly_one_copy(rqb, backend, conn):
    """Each outcome of an enqueue in doubt on RQ (the fallback copy held on Postgres), settled on real servers."""
    doubts = Doubts({RQ: rqb, PG: backend})
    held = held_until(None, 60)
    # Redis had it after all: the held copy goes.
    rq.Queue("default", connection=conn).enqueue(jobs.noop, job_id="reached")
    backend.enqueue(JobSpec("tests.jobs.noop", job_id="reached", run_at=held))
    # Redis never had it: the held copy is the job.
    backend.enqueue(JobSpec("tests.jobs.noop", job_id="lost", run_at=held))
    # Redis had it, and the held copy already ran (the outage outlasted the hold): Redis's copy goes.
    rq.Queue("default", connection=conn).enqueue(jobs.noop, job_id="both")
    backend.enqueue(JobSpec("tests.jobs.noop", job_id="both"))
    done = subprocess.run([sys.executable, "-m", "migrator", "worker", "--burst"], cwd=ROOT,
                          env=subprocess_env(DATABASE_URL=backend.db.url), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert backend.fetch_job("both").state is JobState.FINISHED
    for job_id in ("reached", "lost", "both"):
        doubts.hold(RQ, job_id, PG)
    doubts.settle(RQ)
    assert backend.fetch_job("reached") is None and rqb.fetch_job("reached") is not None
    assert backend.fetch_job("lost") is not None and rqb.fetch_job("lost") is None
    assert rqb.fetch_job("both") is None and backend.fetch_job("both").state is JobState.FINISHED
    assert doubts.pending() == 0


def test_settling_reads_again_while_the_backend_comes_back(own_pg, rqb, conn):
    """Right after a restart the pool hands out connections the crash broke: the settle reads again until the
    backend answers, instead of leaving the held copy to run (Postgres has the job: the copy must go)."""
    new = PostgresBackend(own_pg.url)
    try:
        new.enqueue(JobSpec("tests.jobs.noop", job_id="committed"))
        rq.Queue("default", connection=conn).enqueue_at(held_until(None, 60), jobs.noop, job_id="committed")
        doubts = Doubts({PG: new, RQ: rqb})
        doubts.hold(PG, "committed", RQ)
        own_pg.stop("immediate")  # the pool's connection is now broken
        restart = threading.Timer(1.0, own_pg.start)
        restart.start()
        try:
            doubts.settle(PG, attempts=120, pause=0.25)
        finally:
            restart.join()
        assert doubts.pending() == 0
        assert rqb.fetch_job("committed") is None and new.fetch_job("committed") is not None
    finally:
        new.close()
