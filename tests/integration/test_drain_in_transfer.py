"""A transfer interrupted mid-move holds jobs outside every queue: drain-check must count them, not call the
backend empty, and say how to finish the move."""
from __future__ import annotations

from adapters.base import JobSpec
from adapters.pg_backend import transfer as pg_side
from adapters.rq_backend import RQBackend
from adapters.rq_backend import transfer as rq_side
from migrator.drain.check import check_drain
from migrator.drain.values import Place
from migrator.transfer.run import transfer_pending
from migrator.transfer.values import Direction


def places(report):
    return {(r.backend.value, r.job_name, r.place): r.count for side in report.sides for r in side.rows if r.count}


def test_jobs_held_by_an_interrupted_rq_transfer_are_pending(redis_url, backend):
    legacy = RQBackend(redis_url)
    ids = [legacy.enqueue(JobSpec("tests.jobs.noop", job_id=f"j{i}")).job_id for i in range(3)]
    [queued, *_] = rq_side.sources(legacy, "default")
    rq_side.claim(legacy, queued, ids[:2])  # step 1 of a move, then the process "dies"
    report = check_drain(legacy, None)
    assert not report.drained
    assert places(report)[("rq", "tests.jobs.noop", Place.IN_TRANSFER)] == 2
    [warning] = [w for side in report.sides for w in side.warnings if w.kind == "in-transfer"]
    assert "migrator transfer --all --from rq --to postgres" in warning.message
    transfer_pending(legacy, backend, Direction.TO_POSTGRES)
    assert check_drain(legacy, None).drained
    assert sorted(p.spec.job_id for p in backend.iter_pending()) == ids
    legacy.close()


def test_jobs_held_by_an_interrupted_postgres_transfer_are_pending(redis_url, backend):
    backend.enqueue_many([JobSpec("tests.jobs.noop", job_id=f"p{i}") for i in range(2)])
    pg_side.take(backend, ["p0", "p1"])  # taken out of the queue, not landed in RQ
    report = check_drain(None, backend)
    assert not report.drained
    assert places(report)[("postgres", "tests.jobs.noop", Place.IN_TRANSFER)] == 2
    legacy = RQBackend(redis_url)
    transfer_pending(legacy, backend, Direction.TO_RQ)
    assert check_drain(None, backend).drained
    assert sorted(p.spec.job_id for p in legacy.iter_pending()) == ["p0", "p1"]
    legacy.close()
