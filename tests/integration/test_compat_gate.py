"""The compat gate of `flip`/`rollout`, and the router that sends what the new backend refuses to RQ instead."""
from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from rq import Queue as RQQueue
from rq.job import Job

from adapters.base import BackendName, JobRefused, JobSpec
from migrator import Queue, wiring
from migrator.compat.scan import scan_payloads
from migrator.config import Settings
from migrator.drain import strays
from migrator.drain.check import check_drain
from migrator.routing import router as routing_router
from migrator.routing.router import Router
from tests import jobs
from tests.compat_types import Money
from tests.support import run_cli


@pytest.fixture
def settings(pg_url: str, redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, database_url=pg_url, flag_cache_seconds=0.1)


@pytest.fixture
def cli(settings: Settings):  # type: ignore[no-untyped-def]
    wiring.routing_tables(settings).record_seen(["tests.jobs.echo", "tests.jobs.add"])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url, COLUMNS="200")
    return run


def newest_entry(cli) -> dict:  # type: ignore[no-untyped-def]
    done = cli("history", "--json", "--limit", "1")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)[0]


def test_flip_refused_while_rq_holds_payloads_the_new_backend_cannot_carry(cli, conn: redis.Redis):  # type: ignore[no-untyped-def]
    RQQueue("default", connection=conn).enqueue("tests.jobs.echo", Money(990))
    done = cli("flip", "tests.jobs.echo")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "tests.jobs.echo: 1 of 1 pending payloads would fail" in done.stderr
    assert "args[0] is a tests.compat_types.Money" in done.stderr and "--force" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert json.loads(cli("status", "--json").stdout)["routing"]["flipped"] == []

    forced = cli("flip", "tests.jobs.echo", "--force", "--by", "alice")
    assert forced.returncode == 0, forced.stderr
    entry = newest_entry(cli)
    assert (entry["action"], entry["job"], entry["actor"]) == ("flip", "tests.jobs.echo", "alice")
    assert "args[0] is a tests.compat_types.Money" in entry["detail"]["forced"]


def test_flip_of_a_job_whose_payloads_bind_and_carry_records_no_override(cli, conn: redis.Redis):  # type: ignore[no-untyped-def]
    RQQueue("default", connection=conn).enqueue("tests.jobs.add", 1, 2)
    done = cli("flip", "tests.jobs.add")
    assert done.returncode == 0, done.stderr
    assert "forced" not in newest_entry(cli)["detail"]


def test_rollout_refused_for_a_payload_that_would_not_bind_then_forced(cli, conn: redis.Redis):  # type: ignore[no-untyped-def]
    q = RQQueue("default", connection=conn)
    q.enqueue("tests.jobs.add", 1)  # add(a, b): b missing
    q.enqueue("tests.jobs.add", 1, 2)
    done = cli("rollout", "--all")
    assert done.returncode == 1
    assert "rollout --all refused: tests.jobs.add: 1 of 2 pending payloads would fail" in done.stderr
    assert "missing a required argument: 'b'" in done.stderr
    forced = cli("rollout", "--percent", "100", "--force")
    assert forced.returncode == 0, forced.stderr
    detail = newest_entry(cli)["detail"]
    assert detail["percent"] == 100 and "tests.jobs.add" in detail["forced"]


def test_rollout_that_moves_no_failing_job_passes(cli, conn: redis.Redis):  # type: ignore[no-untyped-def]
    RQQueue("default", connection=conn).enqueue("tests.jobs.add", 1)
    assert cli("flip", "tests.jobs.add", "--back").returncode == 0  # pinned: a rollout does not move it
    done = cli("rollout", "--all")
    assert done.returncode == 0, done.stderr


@pytest.fixture
def router(settings: Settings) -> Iterator[Router]:
    wiring.flag_store(settings).flip("tests.jobs.echo", by="test")
    r = Router(wiring.rq_backend(settings), wiring.postgres_backend(settings), wiring.cached_flags(settings).start())
    yield r
    r.close()


def test_enqueue_of_a_payload_the_new_backend_refuses_goes_to_rq_counted(router: Router, conn: redis.Redis,
                                                                         caplog: pytest.LogCaptureFixture):
    before = routing_router.REFUSED["tests.jobs.echo"]
    q = Queue("default", router=router)
    with caplog.at_level(logging.WARNING, logger="migrator.router"):
        refused = [q.enqueue(jobs.echo, Money(i)) for i in range(3)]
        carried = q.enqueue(jobs.echo, 7)
    assert {h.backend for h in refused} == {BackendName.RQ} and carried.backend is BackendName.POSTGRES
    assert routing_router.REFUSED["tests.jobs.echo"] == before + 3
    assert sum("cannot carry job tests.jobs.echo" in r.getMessage() for r in caplog.records) <= 1
    meta = Job.fetch(refused[0].id, connection=conn).meta
    assert meta["migrator_refused"]["from"] == "postgres"
    assert "args[0] is a tests.compat_types.Money" in meta["migrator_refused"]["reason"]
    (echo,) = scan_payloads([router.backends[BackendName.RQ]]).jobs  # what drain-check and status can show
    assert (echo.job_name, echo.seen, echo.failing, echo.refused_at_enqueue) == ("tests.jobs.echo", 3, 3, 3)


def test_refused_enqueues_are_the_routers_own_in_drain_check_not_strays(router: Router, settings: Settings):
    """A payload Postgres refuses goes to RQ after the flip, on purpose: drain-check counts it pending and names it
    (the CLI says why), and never calls it a stray enqueue."""
    Queue("default", router=router).enqueue(jobs.echo, Money(1))
    timeline = strays.load_timeline(wiring.flag_store(settings))
    report = check_drain(router.backends[BackendName.RQ], None, routed_since=timeline.since, bound=timedelta(0))
    assert not report.drained and report.strays_checked and report.strays == ()
    [back] = report.routed_back
    assert (back.job_name, back.why, back.count) == ("tests.jobs.echo", "refused", 1)
    shown = run_cli("drain-check", "--backend", "rq", REDIS_URL=settings.redis_url, DATABASE_URL=settings.database_url)
    assert shown.returncode == 1 and "no stray enqueues" in shown.stdout
    assert "router enqueues, not strays: 1 tests.jobs.echo sent to RQ by the router (postgres could not carry the " \
           "payload)" in " ".join(shown.stdout.split())


def test_enqueue_many_sends_only_the_refused_jobs_to_rq(router: Router):
    before = routing_router.REFUSED["tests.jobs.echo"]
    q = Queue("default", router=router)
    handles = q.enqueue_many([Queue.prepare_data(jobs.echo, (1,)), Queue.prepare_data(jobs.echo, (Money(2),)),
                              Queue.prepare_data(jobs.echo, (3,))])
    assert [h.backend for h in handles] == [BackendName.POSTGRES, BackendName.RQ, BackendName.POSTGRES]
    assert routing_router.REFUSED["tests.jobs.echo"] == before + 1


def test_without_a_legacy_backend_the_refusal_is_the_apps_error(router: Router):
    router.backends.pop(BackendName.RQ).close()  # RQ removed from the app: nothing to send the job to
    with pytest.raises(JobRefused, match="args\\[0\\] is a tests.compat_types.Money"):
        router.enqueue(JobSpec("tests.jobs.echo", (Money(1),)))
