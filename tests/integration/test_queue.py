"""`migrator.Queue` and the Router: each enqueue goes where the flags say, and runs there exactly once."""
from __future__ import annotations

import random
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest
from rq import Queue as RQQueue
from rq import Retry

from adapters.base import BackendName, BackendUnavailable, JobRefused
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.routing_tables import RoutingTables
from adapters.rq_backend import RQBackend
from migrator import Queue, Router, job
from migrator.routing.cache import CachedFlags
from migrator.routing.flag_store import FlagStore
from tests import jobs
from tests.support import (ROOT, stop_processes, ledger_counts, ledger_sides, run_cli, spawn_cli, spawn_rq_worker, subprocess_env,
                            wait_for)


@pytest.fixture
def store(pg_url):
    return FlagStore(RoutingTables(pg_url))


@pytest.fixture
def router(pg_url, redis_url):
    flags = CachedFlags(FlagStore(RoutingTables(pg_url)), 0.1).start()
    r = Router(RQBackend(redis_url), PostgresBackend(pg_url), flags)
    yield r
    r.close()


def burst_both(redis_url: str, pg_url: str) -> None:
    rq_worker = spawn_rq_worker(redis_url, "--burst", "default", MIGRATOR_TEST_SIDE="rq")
    assert rq_worker.wait(120) == 0
    done = run_cli("worker", "--burst", DATABASE_URL=pg_url, MIGRATOR_TEST_SIDE="postgres")
    assert done.returncode == 0, done.stderr


def test_unflagged_job_goes_to_rq_and_runs_there(router, redis_url, pg_url, ledger_url):
    handle = Queue("default", router=router).enqueue(jobs.ledger_a, "k1")
    assert handle.backend is BackendName.RQ
    assert handle.get_status() == "queued"
    burst_both(redis_url, pg_url)
    assert handle.get_status() == "finished" and handle.result == "k1"
    assert ledger_sides(ledger_url) == {"k1": ["rq"]}


def test_flipped_job_goes_to_postgres(router, store, redis_url, pg_url, ledger_url):
    store.flip("tests.jobs.ledger_a", by="test")
    router.flags.refresh()
    q = Queue("default", router=router)
    flipped, other = q.enqueue(jobs.ledger_a, "a1"), q.enqueue(jobs.ledger_b, "b1")
    assert (flipped.backend, other.backend) == (BackendName.POSTGRES, BackendName.RQ)
    burst_both(redis_url, pg_url)
    assert ledger_sides(ledger_url) == {"a1": ["postgres"], "b1": ["rq"]}
    assert flipped.result == "a1" and flipped.is_finished


def test_rq_options_reach_either_backend(router, store, redis_url, pg_url):
    q = Queue("default", router=router)
    opts = dict(job_timeout="2m", result_ttl=100, ttl=600, failure_ttl=900, retry=Retry(max=2, interval=[5]),
                meta={"tenant": 3}, description="adds")
    on_rq = q.enqueue(jobs.add, 1, 2, job_id="on-rq", **opts)
    store.flip("tests.jobs.add")
    router.flags.refresh()
    on_pg = q.enqueue(jobs.add, 1, 2, job_id="on-pg", **opts)
    assert (on_rq.backend, on_pg.backend) == (BackendName.RQ, BackendName.POSTGRES)
    for backend in (RQBackend(redis_url), PostgresBackend(pg_url)):
        [pending] = list(backend.iter_pending())
        spec = pending.spec
        assert (spec.timeout, spec.result_ttl, spec.ttl, spec.failure_ttl) == (120, 100, 600, 900)
        assert (spec.retry.max, spec.retry.intervals, spec.meta, spec.description) == (2, (5,), {"tenant": 3}, "adds")


def test_option_the_chosen_backend_cannot_honour_is_an_error(router, store):
    store.flip("tests.jobs.add")
    router.flags.refresh()
    with pytest.raises(JobRefused, match="on_success='tests.jobs.nowhere' does not import"):
        Queue(router=router).enqueue(jobs.add, 1, 2, on_success="tests.jobs.nowhere")
    with pytest.raises(JobRefused, match="RQ option repeat is not supported"):
        Queue(router=router).enqueue(jobs.add, 1, 2, repeat=object())


def test_dependent_job_follows_its_parent(router, store):
    q = Queue(router=router)
    store.flip("tests.jobs.add")
    router.flags.refresh()
    parent = q.enqueue(jobs.add, 1, 2)
    child = q.enqueue(jobs.noop, depends_on=parent.id)  # noop itself routes to rq
    assert (parent.backend, child.backend) == (BackendName.POSTGRES, BackendName.POSTGRES)
    fresh = Router(router.backends[BackendName.RQ], router.backends[BackendName.POSTGRES], router.flags)
    grandchild = Queue(router=fresh).enqueue(jobs.noop, depends_on=[child.id])  # found by lookup, not memory
    assert grandchild.backend is BackendName.POSTGRES
    assert grandchild.get_status() == "deferred"


def test_enqueue_in_at_and_many(router, store, redis_url, pg_url):
    store.flip("tests.jobs.add")
    router.flags.refresh()
    q = Queue(router=router)
    later = q.enqueue_in(timedelta(hours=1), jobs.add, 1, 1)
    at = q.enqueue_at(datetime.now(timezone.utc) + timedelta(hours=2), jobs.noop)
    assert (later.get_status(), at.get_status()) == ("scheduled", "scheduled")
    assert (later.backend, at.backend) == (BackendName.POSTGRES, BackendName.RQ)
    many = q.enqueue_many([RQQueue.prepare_data(jobs.add, (i, i)) for i in range(4)] +
                          [RQQueue.prepare_data(jobs.noop, (i,)) for i in range(3)])
    assert [h.backend for h in many] == [BackendName.POSTGRES] * 4 + [BackendName.RQ] * 3
    burst_both(redis_url, pg_url)
    assert [h.result for h in many[:4]] == [0, 2, 4, 6]


def test_job_decorator_delay(router, store, redis_url, pg_url):
    wrapped = job(Queue("default", router=router), timeout=30)(jobs.add)
    handle = wrapped.delay(20, 22)
    assert handle.backend is BackendName.RQ
    burst_both(redis_url, pg_url)
    assert handle.result == 42


def test_unreachable_backend_is_an_error_or_falls_back_when_asked(redis_url, pg_url):
    def router(fallback: bool) -> Router:
        flags = CachedFlags(FlagStore(RoutingTables(pg_url)), 0.1).start()
        return Router(RQBackend("redis://:pw@127.0.0.1:1/0"), PostgresBackend(pg_url), flags, fallback=fallback)

    strict, lenient = router(fallback=False), router(fallback=True)
    try:
        with pytest.raises(BackendUnavailable, match=r"rq is unreachable at redis://:\*\*\*@127.0.0.1:1/0"):
            Queue(router=strict).enqueue(jobs.add, 1, 2)
        handle = Queue(router=lenient).enqueue(jobs.add, 1, 2)
        assert handle.backend is BackendName.POSTGRES
        [pending] = list(lenient.backends[BackendName.POSTGRES].iter_pending())
        assert pending.spec.meta["migrator_fallback"]["from"] == "rq"
    finally:  # each router's breaker probes the dead Redis until closed
        strict.close()
        lenient.close()


def test_routing_changes_under_concurrent_load_run_every_job_once_where_routed(
        router, store, redis_url, pg_url, ledger_url):
    """Threads enqueue through migrator.Queue while flips, pins, rollouts and a rollback happen; real RQ workers
    (forking and SimpleWorker) and a migrator worker run side by side; the ledger proves each job ran once, on
    the backend its flags named at enqueue time."""
    workers = [spawn_rq_worker(redis_url, "default", MIGRATOR_TEST_SIDE="rq"),
               spawn_rq_worker(redis_url, "default", simple=True, MIGRATOR_TEST_SIDE="rq"),
               spawn_cli("worker", DATABASE_URL=pg_url, MIGRATOR_TEST_SIDE="postgres")]
    q = Queue("default", router=router)
    fns = [jobs.ledger_a, jobs.ledger_b, jobs.ledger_c, jobs.ledger_d]
    placed: dict[str, BackendName] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def enqueue_loop(worker: int) -> None:
        rng = random.Random(worker)
        i = 0
        while not stop.is_set() or i < 20:
            key = f"w{worker}-{i}"
            handle = q.enqueue(rng.choice(fns), key)
            with lock:
                placed[key] = handle.backend
            i += 1

    def change_routing() -> None:
        steps = [lambda: store.flip("tests.jobs.ledger_a"), lambda: store.pin("tests.jobs.ledger_b"),
                 lambda: store.rollout_percent(50), lambda: store.rollout_all(), lambda: store.rollback(),
                 lambda: store.flip("tests.jobs.ledger_c")]
        for step in steps:
            step()
            router.flags.refresh()
            stop.wait(0.3)
        stop.set()

    threads = [threading.Thread(target=enqueue_loop, args=(n,)) for n in range(3)]
    changer = threading.Thread(target=change_routing)
    try:
        for t in [*threads, changer]:
            t.start()
        for t in [changer, *threads]:
            t.join(60)
        wait_for(lambda: len(ledger_counts(ledger_url)) >= len(placed), timeout=120, what="every job to run")
    finally:
        stop_processes(workers)
    sides = ledger_sides(ledger_url)
    assert set(sides) == set(placed)
    assert {key: runs for key, runs in sides.items() if len(runs) != 1} == {}
    assert {key: runs[0] for key, runs in sides.items()} == {key: b.value for key, b in placed.items()}
    assert {b for b in placed.values()} == {BackendName.RQ, BackendName.POSTGRES}


def test_a_short_script_that_enqueues_makes_its_jobs_known(pg_url, redis_url):
    """A process that enqueues and exits at once (a cron script) still records the job names it routed, so
    that `migrator flip` knows them without --force."""
    script = "from migrator import Queue\nfrom tests import jobs\nQueue('default').enqueue(jobs.ledger_d, 'k')\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=subprocess_env(DATABASE_URL=pg_url, REDIS_URL=redis_url))
    assert done.returncode == 0, done.stderr
    flipped = run_cli("flip", "tests.jobs.ledger_d", DATABASE_URL=pg_url, REDIS_URL=redis_url)
    assert flipped.returncode == 0, flipped.stderr
