"""RQ's argument handling, exactly: the names rq.Queue.enqueue() takes as options are options, every other keyword
(`timeout` and `priority` included) reaches the job function, on both backends, as raw RQ does it."""
from __future__ import annotations

import pytest
import rq

from adapters.base import BackendName, JobRefused
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.routing_tables import RoutingTables
from adapters.rq_backend import RQBackend
from migrator import Queue, job
from migrator.routing.cache import CachedFlags
from migrator.routing.flag_store import FlagStore
from migrator.routing.router import Router
from tests import jobs
from tests.support import run_cli, spawn_rq_worker

ECHO = "tests.jobs.echo"


@pytest.fixture(params=[BackendName.RQ, BackendName.POSTGRES], ids=str)
def routed(request, pg_url, redis_url):  # type: ignore[no-untyped-def]
    store = FlagStore(RoutingTables(pg_url))
    if request.param is BackendName.POSTGRES:
        store.flip(ECHO, by="test")
    r = Router(RQBackend(redis_url), PostgresBackend(pg_url), CachedFlags(FlagStore(RoutingTables(pg_url)), 0.1).start())
    yield request.param, r
    r.close()


def run_both(redis_url: str, pg_url: str) -> None:
    assert spawn_rq_worker(redis_url, "--burst", "default").wait(120) == 0
    assert run_cli("worker", "--burst", DATABASE_URL=pg_url).returncode == 0


def test_enqueue_keywords_reach_the_same_place_as_with_rq(routed, rqb, redis_url, pg_url):
    backend, router = routed
    q = Queue("default", router=router)
    ours = q.enqueue(jobs.echo, 1, timeout=7, priority=3, description="d", job_id="ours", meta={"m": 1})
    reference = rq.Queue("default", connection=rqb.connection).enqueue(jobs.echo, 1, timeout=7, priority=3,
                                                                       description="d", job_id="theirs")
    assert ours.backend is backend
    run_both(redis_url, pg_url)
    ours.refresh()
    reference.refresh()
    assert ours.return_value() == reference.return_value() == {"args": [1], "kwargs": {"timeout": 7, "priority": 3}}
    assert (ours.description, ours.meta.get("m")) == ("d", 1)


def test_delay_takes_only_rqs_three_per_call_options(routed, redis_url, pg_url):
    backend, router = routed
    decorated = job(Queue("default", router=router), description="from the decorator")(jobs.echo)
    handle = decorated.delay(2, job_id="delayed", timeout=9, meta="a kwarg, as with RQ's decorator")
    assert (handle.id, handle.backend, handle.description) == ("delayed", backend, "from the decorator")
    run_both(redis_url, pg_url)
    handle.refresh()
    assert handle.return_value() == {"args": [2], "kwargs": {"timeout": 9, "meta": "a kwarg, as with RQ's decorator"}}


def test_rq_options_migrator_cannot_carry_are_refused_by_name(routed):
    _, router = routed
    with pytest.raises(JobRefused, match="RQ option webhooks is not supported"):
        Queue("default", router=router).enqueue(jobs.echo, webhooks=["https://example.invalid/hook"])
