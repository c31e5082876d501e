"""The routing commands as a user runs them: `python -m migrator ...` against a real database."""
from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import redis
import rq

from adapters.base import JobSpec
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.routing_tables import RoutingTables
from migrator.routing import history, known_jobs
from migrator.localservers import free_port
from tests.support import run_cli


@pytest.fixture
def cli(pg_url: str, redis_url: str):  # type: ignore[no-untyped-def]
    """Run a migrator command against this test's database and Redis (flip and rollout scan RQ's pending payloads
    through the compat gate); the jobs below are known (seen by the router)."""
    RoutingTables(pg_url).record_seen(["app.jobs.send_email", "app.jobs.resize_image", "tests.jobs.add"])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, DATABASE_URL=pg_url, REDIS_URL=redis_url, COLUMNS="200")
    return run


def status(cli) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    done = cli("status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def routes(cli) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {j["job"]: (j["backend"], j["reason"]) for j in status(cli)["jobs"]}


def test_flip_pin_unflip(cli) -> None:  # type: ignore[no-untyped-def]
    done = cli("flip", "app.jobs.send_email")
    assert done.returncode == 0, done.stderr
    assert "routes to postgres (flipped)" in done.stdout
    assert cli("flip", "app.jobs.resize_image", "--back").returncode == 0
    assert cli("rollout", "--all").returncode == 0
    r = routes(cli)
    assert r["app.jobs.send_email"] == ("postgres", "flipped")
    assert r["app.jobs.resize_image"] == ("rq", "pinned")
    assert r["tests.jobs.add"] == ("postgres", "rollout all")
    assert cli("unflip", "app.jobs.resize_image").returncode == 0
    assert routes(cli)["app.jobs.resize_image"] == ("postgres", "rollout all")


def test_flip_of_an_unknown_job_exits_2_and_suggests(cli) -> None:  # type: ignore[no-untyped-def]
    done = cli("flip", "app.jobs.send_emial")
    assert done.returncode == 2
    assert "did you mean app.jobs.send_email" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    bare = cli("flip", "resize_image")
    assert bare.returncode == 2 and "app.jobs.resize_image" in bare.stderr
    assert status(cli)["routing"]["version"] == 0  # nothing was written


def test_flip_force_accepts_a_job_not_seen_yet(cli) -> None:  # type: ignore[no-untyped-def]
    done = cli("flip", "app.jobs.brand_new", "--force")
    assert done.returncode == 0, done.stderr
    assert routes(cli)["app.jobs.brand_new"] == ("postgres", "flipped")


def test_unflip_of_a_job_without_flag_exits_2(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("flip", "app.jobs.send_email").returncode == 0
    done = cli("unflip", "app.jobs.send_emai")
    assert done.returncode == 2 and "did you mean app.jobs.send_email" in done.stderr


@pytest.mark.parametrize("args", [("--percent", "101"), ("--percent", "-1"), ("--percent", "nan"),
                                  ("--percent", "ten"), (), ("--percent", "5", "--all")])
def test_bad_rollout_exits_2(cli, args: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    done = cli("rollout", *args)
    assert done.returncode == 2, done.stdout
    assert "Traceback" not in done.stderr


def test_rollout_percent_shows_which_jobs_it_includes(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("rollout", "--percent", "50").returncode == 0
    report = status(cli)
    assert report["routing"]["percent"] == 50
    for job in report["jobs"]:
        included = job["bucket"] < 5000
        assert (job["backend"], job["reason"]) == (("postgres", "in rollout percentage") if included
                                                   else ("rq", "outside rollout percentage"))


def test_rollback_and_history_show_who_and_how_to_redo(cli, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    assert cli("flip", "app.jobs.send_email").returncode == 0
    assert cli("flip", "app.jobs.resize_image", "--back", "--by", "bob").returncode == 0
    assert cli("rollout", "--percent", "25").returncode == 0
    done = cli("rollback", "--by", "alice")
    assert done.returncode == 0, done.stderr
    assert "migrator flip app.jobs.resize_image --back --force" in done.stdout
    assert set(routes(cli).values()) == {("rq", "default")}
    entries = json.loads(cli("history", "--json").stdout)
    assert [e["action"] for e in entries] == ["rollback", "rollout-percent", "pin", "flip"]
    rollback, _, pin, flip = entries
    assert (rollback["actor"], pin["actor"], flip["actor"]) == ("alice", "bob", history.default_actor())
    assert rollback["before"]["flipped"] == ["app.jobs.send_email"] and rollback["before"]["percent"] == 25
    assert rollback["after"]["flipped"] == [] and rollback["after"]["percent"] == 0
    assert rollback["restore_commands"][-1] == "migrator rollout --percent 25"
    table = cli("history")
    assert table.returncode == 0 and "alice" in table.stdout and "bob" in table.stdout
    assert "to restore the routing before rollback" in table.stdout


def test_status_reports_queue_depths(cli, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    backend = PostgresBackend(pg_url)
    try:
        backend.enqueue(JobSpec(job_name="tests.jobs.add", args=(1, 2)))
        backend.enqueue(JobSpec(job_name="app.jobs.only_in_the_queue"))
    finally:
        backend.close()
    report = status(cli)
    jobs = {j["job"]: j for j in report["jobs"]}
    assert jobs["tests.jobs.add"]["pending"]["postgres"] == 1
    assert "app.jobs.only_in_the_queue" in jobs  # a job waiting in a queue is listed even if never routed
    assert report["queues"]["postgres"]["queues"]["default"]["queued"] == 2
    down = run_cli("status", "--json", DATABASE_URL=pg_url, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert down.returncode == 0 and json.loads(down.stdout)["queues"]["rq"]["error"]  # Redis down: status answers
    assert cli("status").returncode == 0


def test_unreachable_flag_store_exits_2_with_one_line() -> None:
    done = run_cli("flip", "app.jobs.x", "--force", DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    assert done.returncode == 2
    assert done.stderr.startswith("error: postgres is unreachable") and "Traceback" not in done.stderr


def test_module_jobs_lists_functions_defined_in_the_module() -> None:
    names = known_jobs.module_jobs(["tests.jobs"])
    assert "tests.jobs.add" in names and "tests.jobs.noop" in names
    assert not any(n.startswith("tests.jobs.psycopg") or n.endswith(".Any") for n in names)


def test_status_counts_rq_jobs_per_job_name(pg_url: str, redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    rq.Queue("default", connection=connection).enqueue("tests.jobs.add", 1, 2)
    connection.close()
    done = run_cli("status", "--json", DATABASE_URL=pg_url, REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["queues"]["rq"]["error"] is None
    assert {j["job"]: j["pending"] for j in report["jobs"]}["tests.jobs.add"] == {"rq": 1, "postgres": 0}
