"""An app whose RQ workers read JSON (rq.serializers.JSONSerializer), or use its own Job and Queue classes, named once
in the configuration: the drop-in writes what those workers read, and drain-check, transfer and compat scan read it
back."""
from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import redis
import rq
from rq.serializers import JSONSerializer

from adapters.base import BackendName, Place
from migrator import Queue, wiring
from migrator.compat.scan import scan_payloads
from migrator.config import Settings
from migrator.drain.check import check_drain
from migrator.errors import BadInput
from migrator.transfer.run import transfer_pending
from migrator.transfer.values import Direction
from tests import jobs
from tests.rq_classes import AppJob
from tests.support import ROOT, ledger_counts, subprocess_env


@pytest.fixture
def settings(redis_url: str, pg_url: str) -> Settings:
    return Settings(redis_url=redis_url, database_url=pg_url, rq_serializer="rq.serializers:JSONSerializer")


def test_a_json_serializer_app_round_trips_through_drop_in_drain_transfer_and_scan(settings, redis_url, pg_url,
                                                                                   ledger_url):
    router = wiring.router_from_env(settings=settings)
    try:
        q = Queue("default", router=router)
        handles = [q.enqueue(jobs.ledger_a, f"k{i}") for i in range(3)]
    finally:
        router.close()
    assert {h.backend for h in handles} == {BackendName.RQ}
    raw = redis.Redis.from_url(redis_url).hget(rq.job.Job.key_for(handles[0].id), "data")
    assert JSONSerializer.loads(zlib.decompress(raw))[0] == "tests.jobs.ledger_a"  # JSON, not pickle

    legacy, new = wiring.rq_backend(settings), wiring.postgres_backend(settings)
    try:
        report = check_drain(legacy, None, per_job=True)
        assert [(r.job_name, r.place, r.count) for r in report.pending] == [("tests.jobs.ledger_a", Place.QUEUED, 3)]
        scan = scan_payloads([legacy], carrier=new)
        assert scan.ok and scan.seen == 3
        moved = transfer_pending(legacy, new, Direction.TO_POSTGRES, "tests.jobs.ledger_a")
        assert moved.total_moved == 3 and not moved.refused
        back = transfer_pending(legacy, new, Direction.TO_RQ)  # and back, written as the app's workers read it
        assert back.total_moved == 3
    finally:
        legacy.close()
        new.close()
    rq_cli = str(Path(sys.executable).with_name("rq"))
    done = subprocess.run([rq_cli, "worker", "--burst", "--url", redis_url, "--serializer",
                           "rq.serializers.JSONSerializer", "default"], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert ledger_counts(ledger_url) == {"k0": 1, "k1": 1, "k2": 1}


def test_an_rq_class_that_does_not_import_is_one_line_naming_the_key(redis_url, pg_url):
    with pytest.raises(BadInput, match="configuration key 'rq_serializer': cannot import 'app.nowhere:Json'"):
        wiring.rq_backend(Settings(redis_url=redis_url, database_url=pg_url, rq_serializer="app.nowhere:Json"))


def test_the_apps_rq_job_and_queue_classes_named_once_are_the_ones_used(redis_url, pg_url, ledger_url):
    """rq_job_class and rq_queue_class from the configuration: the drop-in creates RQ-routed jobs through the app's
    Queue class and hands back (and fetches) the app's Job class; RQ's worker, given the same classes, runs them."""
    settings = Settings(redis_url=redis_url, database_url=pg_url, rq_job_class="tests.rq_classes:AppJob",
                        rq_queue_class="tests.rq_classes:AppQueue")
    router = wiring.router_from_env(settings=settings)
    try:
        q = Queue("default", router=router)
        handle = q.enqueue(jobs.ledger_a, "classes")
        assert handle.backend is BackendName.RQ and isinstance(handle, AppJob)
        assert isinstance(q.fetch_job(handle.id), AppJob)
    finally:
        router.close()
    stored = rq.job.Job.fetch(handle.id, connection=redis.Redis.from_url(redis_url))
    assert stored.meta["queue_class"] == "AppQueue"  # created by the app's Queue class, not rq.Queue
    rq_cli = str(Path(sys.executable).with_name("rq"))
    done = subprocess.run([rq_cli, "worker", "--burst", "--url", redis_url, "--job-class", "tests.rq_classes.AppJob",
                           "--queue-class", "tests.rq_classes.AppQueue", "default"], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert ledger_counts(ledger_url) == {"classes": 1}
