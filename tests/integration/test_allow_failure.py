"""rq.Dependency(allow_failure=True) honoured on both backends: the child runs after its parent failed; without
it, the child of a failed parent stays deferred, as with RQ."""
from __future__ import annotations

import pytest
from rq.job import Dependency

from adapters.base import BackendName, JobState
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.routing_tables import RoutingTables
from adapters.rq_backend import RQBackend
from migrator import Queue
from migrator.routing.cache import CachedFlags
from migrator.routing.flag_store import FlagStore
from migrator.routing.router import Router
from tests import jobs
from tests.support import ledger_counts, run_cli, spawn_rq_worker


@pytest.fixture(params=[BackendName.RQ, BackendName.POSTGRES], ids=str)
def queue(request, pg_url, redis_url):  # type: ignore[no-untyped-def]
    store = FlagStore(RoutingTables(pg_url))
    if request.param is BackendName.POSTGRES:
        store.flip("tests.jobs.boom", by="test")  # the child follows its parent's backend
    r = Router(RQBackend(redis_url), PostgresBackend(pg_url), CachedFlags(FlagStore(RoutingTables(pg_url)), 0.1).start())
    yield request.param, Queue("default", router=r)
    r.close()


def run_workers(redis_url: str, pg_url: str) -> None:
    """Each backend's worker twice: the parent fails in the first pass, its released child runs in the second (a
    migrator worker's housekeeping releases it within its reap interval)."""
    for _ in range(2):
        assert spawn_rq_worker(redis_url, "--burst", "default").wait(120) == 0
        assert run_cli("worker", "--burst", DATABASE_URL=pg_url).returncode == 0


def test_the_child_of_a_failed_parent_runs_only_with_allow_failure(queue, redis_url, pg_url, ledger_url):
    backend, q = queue
    parent = q.enqueue(jobs.boom, "parent fails", retry=None)
    tolerant = q.enqueue(jobs.ledger_a, "tolerant", depends_on=Dependency(jobs=[parent], allow_failure=True))
    strict = q.enqueue(jobs.ledger_b, "strict", depends_on=Dependency(jobs=[parent]))
    assert {parent.backend, tolerant.backend, strict.backend} == {backend}
    assert tolerant.get_status() == "deferred"
    run_workers(redis_url, pg_url)
    assert parent.get_status(refresh=True) == "failed"
    assert ledger_counts(ledger_url) == {"tolerant": 1}
    assert strict.get_status(refresh=True) == "deferred"
