"""`scan_payloads` over real RQ and Postgres queues holding payloads written by an older version of the app."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue as RQQueue
from rq.job import Job

from adapters.base import BackendName, JobSpec
from adapters.pg_backend.backend import PostgresBackend
from adapters.rq_backend import RQBackend
from migrator.compat.scan import ScanReport, scan_payloads
from tests.compat_support import forget_app, write_app
from tests.compat_types import Money


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Install the fixture app at a version: `app_dir("v2")`; this process imports `app.jobs` from there."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(version: str) -> Path:
        return write_app(tmp_path, version)
    yield install
    forget_app()


# Payloads the v1 code writes, as (job, args, kwargs).
V1_PAYLOADS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("send_email", (1, "hi"), {}),
    ("resize_image", ("a.png", 10, 20), {}),
    ("charge_card", (7,), {"amount": 100}),
    ("cleanup", (30,), {}),
    ("old_report", (1, "2026-01"), {}),
    ("export_csv", ("users",), {}),
    ("audit", ("login",), {"actor": "bob"}),
    ("audit", ("logout", "bob"), {}),
]


def enqueue_v1_in_rq(connection: redis.Redis) -> None:
    q = RQQueue("default", connection=connection)
    for name, args, kwargs in V1_PAYLOADS:
        q.enqueue_call(f"app.jobs.{name}", args=args, kwargs=kwargs)
    q.enqueue_in(timedelta(hours=1), "app.jobs.resize_image", "later.png", 1, 2)  # scheduled, still pending


def reasons(report: ScanReport) -> dict[str, tuple[int, str]]:
    return {j.job_name.rsplit(".", 1)[-1]: (j.failing, j.reasons[0][0]) for j in report.failing_jobs()}


def test_rq_payloads_of_v1_against_v2_code_fail_where_v2_breaks(app_dir, rqb: RQBackend, conn: redis.Redis):  # type: ignore[no-untyped-def]
    enqueue_v1_in_rq(conn)
    app_dir("v2")
    report = scan_payloads([rqb])
    assert not report.ok and report.seen == len(V1_PAYLOADS) + 1
    found = reasons(report)
    assert set(found) == {"resize_image", "charge_card", "cleanup", "old_report", "export_csv", "audit"}
    assert found["resize_image"] == (2, "does not bind: missing a required argument: 'quality'")
    assert found["charge_card"][1] == "does not bind: missing a required argument: 'total'"
    assert found["cleanup"][1].startswith("function does not import: app.jobs has no attribute 'cleanup'")
    assert found["export_csv"][1] == "does not bind: missing a required argument: 'limit'"
    assert found["audit"][0] == 2
    resize = next(j for j in report.jobs if j.job_name == "app.jobs.resize_image")
    assert {e.state.value for e in resize.examples} == {"queued", "scheduled"}
    assert "resize_image('a.png', 10, 20)" in {e.call for e in resize.examples}
    assert "would fail" in report.summary() and report.to_json()["failing"] == 8


def test_rq_payloads_of_v1_bind_to_the_transitional_v3(app_dir, rqb: RQBackend, conn: redis.Redis):  # type: ignore[no-untyped-def]
    enqueue_v1_in_rq(conn)
    app_dir("v3")
    report = scan_payloads([rqb])
    assert report.ok, report.to_json()
    assert report.seen == len(V1_PAYLOADS) + 1


def test_postgres_payloads_of_v1_against_v2_code(app_dir, backend: PostgresBackend, rqb: RQBackend):  # type: ignore[no-untyped-def]
    for name, args, kwargs in V1_PAYLOADS:
        backend.enqueue(JobSpec(f"app.jobs.{name}", args, kwargs))
    app_dir("v2")
    report = scan_payloads([rqb, backend], job_name="app.jobs.charge_card")
    assert report.backends == (BackendName.RQ, BackendName.POSTGRES)
    assert [(j.job_name, j.seen, j.failing) for j in report.jobs] == [("app.jobs.charge_card", 1, 1)]
    assert dict(report.jobs[0].by_backend) == {BackendName.POSTGRES: 1}
    everything = scan_payloads([backend])
    assert set(reasons(everything)) == {"resize_image", "charge_card", "cleanup", "old_report", "export_csv", "audit"}


def test_rq_payload_the_new_backend_cannot_carry_names_argument_and_type(rqb: RQBackend, conn: redis.Redis,
                                                                         backend: PostgresBackend):
    q = RQQueue("default", connection=conn)
    q.enqueue("tests.jobs.echo", Money(1250), note="fine")
    q.enqueue("tests.jobs.echo", 1, when={"at": Money(5)})
    q.enqueue("tests.jobs.echo", 2)
    report = scan_payloads([rqb], carrier=backend)
    (echo,) = report.jobs
    assert (echo.seen, echo.failing) == (3, 2)
    why = dict(echo.reasons)
    assert any("args[0] is a tests.compat_types.Money" in r for r in why), why
    assert any("kwargs['when']['at'] is a tests.compat_types.Money" in r for r in why), why
    without_carrier = scan_payloads([rqb])  # tagged JSON alone says the same
    assert without_carrier.failing == 2


def test_postgres_payloads_are_not_offered_to_the_new_backend_again(backend: PostgresBackend):
    backend.enqueue(JobSpec("tests.jobs.add", (1, 2)))
    assert scan_payloads([backend]).ok


def test_corrupted_bytes_in_a_redis_job_hash_are_reported_not_raised(rqb: RQBackend, conn: redis.Redis):
    q = RQQueue("default", connection=conn)
    bad = q.enqueue("tests.jobs.add", 1, 2)
    good = q.enqueue("tests.jobs.add", 3, 4)
    conn.hset(Job.key_for(bad.id), "data", b"\x78\x9c not zlib, not pickle \x00\xff")
    report = scan_payloads([rqb])
    assert (report.seen, report.failing) == (2, 1)
    (job,) = report.failing_jobs()
    assert job.reasons[0][0].startswith("undecodable: payload cannot be decoded")
    assert job.examples[0].job_id == bad.id and good.id not in {e.job_id for e in job.examples}


def test_long_values_are_cut_short_in_examples(app_dir, rqb: RQBackend, conn: redis.Redis):  # type: ignore[no-untyped-def]
    app_dir("v2")
    RQQueue("default", connection=conn).enqueue("app.jobs.export_csv", "s3cr3t-" + "x" * 500)
    (job,) = scan_payloads([rqb]).failing_jobs()
    assert len(job.examples[0].call) < 80 and "x" * 100 not in job.examples[0].call
