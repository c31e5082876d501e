"""Fixtures and helpers of the RQ API tests: a router that sends every job to one side (RQ or Postgres, each test
runs on both), and in-process workers for both backends."""
from __future__ import annotations

import pytest
import rq

from adapters.base import BackendName
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.routing_tables import RoutingTables
from adapters.pg_backend.worker import Worker
from adapters.pg_backend.worker_options import WorkerOptions
from adapters.rq_backend import RQBackend
from migrator import Queue, Router
from migrator.routing.cache import CachedFlags
from migrator.routing.flag_store import FlagStore

SIDES = [BackendName.RQ, BackendName.POSTGRES]


class InProcessRQWorker(rq.SimpleWorker):
    """RQ's SimpleWorker without the pubsub thread for `rq` commands, which these tests never send (and which
    outlives a burst, failing the leak check)."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


@pytest.fixture(params=SIDES, ids=lambda side: side.value)
def side(request) -> BackendName:
    return request.param


@pytest.fixture
def router(pg_url, redis_url, side):
    """A router sending every job to `side`."""
    store = FlagStore(RoutingTables(pg_url))
    if side is BackendName.POSTGRES:
        store.rollout_all(by="test")
    flags = CachedFlags(store, 60).start()
    r = Router(RQBackend(redis_url), PostgresBackend(pg_url), flags)
    yield r
    r.close()


@pytest.fixture
def queue(router) -> Queue:
    return Queue("default", router=router)


def work(router, pg_url: str) -> None:
    """Run every runnable job of both backends in this process, then return."""
    legacy = router.backends[BackendName.RQ]
    InProcessRQWorker([legacy.queue("default")], connection=legacy.connection).work(burst=True)
    Worker(pg_url, WorkerOptions(burst=True, poll_seconds=0.1)).run()
