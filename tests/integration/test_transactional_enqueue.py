"""Transactional enqueue through the drop-in: jobs routed to the new backend are part of the app's own transaction."""
from __future__ import annotations

import psycopg
import pytest

from adapters.base import BackendName, JobRefused
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.routing_tables import RoutingTables
from adapters.rq_backend import RQBackend
from migrator import Queue
from migrator.routing.cache import CachedFlags
from migrator.routing.flag_store import FlagStore
from migrator.routing.router import Router
from tests import jobs


@pytest.fixture
def router(pg_url, redis_url):  # type: ignore[no-untyped-def]
    FlagStore(RoutingTables(pg_url)).flip("tests.jobs.add", by="test")
    r = Router(RQBackend(redis_url), PostgresBackend(pg_url), CachedFlags(FlagStore(RoutingTables(pg_url)), 0.1).start())
    yield r
    r.close()


def pending_ids(backend: PostgresBackend) -> set[str]:
    return {j.spec.job_id or "" for j in backend.iter_pending()}


def test_a_rolled_back_transaction_leaves_no_job_and_a_committed_one_does(router, backend, pg_url):
    q = Queue("default", router=router)
    with psycopg.connect(pg_url) as conn:
        with pytest.raises(RuntimeError), conn.transaction(), Queue.transaction(conn):
            q.enqueue(jobs.add, 1, 1, job_id="rolled-back")
            assert pending_ids(backend) == set()  # not visible outside the app's transaction
            raise RuntimeError("the request failed")
        with conn.transaction(), Queue.transaction(conn):
            kept = q.enqueue(jobs.add, 2, 2, job_id="committed")
            conn.execute("SELECT 1")  # the app's own work, same transaction
    assert kept.backend is BackendName.POSTGRES
    assert pending_ids(backend) == {"committed"}


def test_a_job_routed_to_rq_inside_the_transaction_is_refused_clearly(router, pg_url):
    with psycopg.connect(pg_url) as conn, conn.transaction(), Queue.transaction(conn):
        with pytest.raises(JobRefused, match="routes to rq, which cannot enqueue inside the app's database transaction"):
            Queue("default", router=router).enqueue(jobs.noop)
