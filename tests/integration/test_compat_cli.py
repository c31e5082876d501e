"""`migrator compat snapshot|check|scan` as an app's CI runs them: in the app's directory, the fixture app at
three versions (v1 in production, v2 with every kind of change, v3 the transitional version)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import redis
from rq import Queue as RQQueue

from adapters.pg_backend.routing_tables import RoutingTables
from migrator.localservers import free_port
from tests.compat_support import run_in, write_app

NOWHERE_PG = "postgresql://postgres@127.0.0.1:{port}/x"


def offline(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A command with no server reachable: snapshot and check must not need any."""
    return run_in(where, *args, DATABASE_URL=NOWHERE_PG.format(port=free_port()),
                  REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")


def kinds(stdout: str) -> set[tuple[str, str, bool]]:
    report = json.loads(stdout)
    return {(c["job"].rsplit(".", 1)[-1], c["kind"], c["breaking"]) for c in report["changes"]}


def test_snapshot_then_check_every_kind_of_change_both_directions(tmp_path: Path):
    app = write_app(tmp_path, "v1")
    done = offline(app, "compat", "snapshot")
    assert done.returncode == 0, done.stderr
    assert "wrote migrator.lock.json (12 jobs)" in done.stdout
    assert "seen by the router not read" in done.stdout
    lock = (app / "migrator.lock.json").read_text()
    assert json.loads(lock)["format"] == 1 and '"app.jobs.cleanup": [' in lock
    assert offline(app, "compat", "check").returncode == 0

    write_app(tmp_path, "v2")
    broken = offline(app, "compat", "check", "--json")
    assert broken.returncode == 1
    assert kinds(broken.stdout) >= {
        ("resize_image", "new-required-param", True), ("audit", "removed-param", True),
        ("charge_card", "renamed-param", True), ("sync_user", "reordered-positional-params", True),
        ("split", "reordered-positional-params", True), ("notify", "changed-kind", True),
        ("export_csv", "removed-default", True), ("cleanup", "deleted-job", True),
        ("monthly_report", "renamed-job", True), ("send_email", "new-optional-param", False),
        ("send_email", "changed-annotation", False), ("welcome", "new-job", False)}
    human = offline(app, "compat", "check")
    assert human.returncode == 1
    for recipe in ("give it a default, deploy, then make it required in a second deploy",
                   "keep the old name as an alias calling the new one until the old name is drained "
                   "(`migrator drain-check --job app.jobs.old_report`)",
                   "stop enqueuing, drain, then delete"):
        assert recipe in human.stdout

    write_app(tmp_path, "v3")  # the transitional version: safe against the v1 lock
    safe = offline(app, "compat", "check", "--json")
    assert safe.returncode == 0, safe.stdout
    assert not any(breaking for _, _, breaking in kinds(safe.stdout))

    # The other direction: v2 locked (deployed), rolling back to v1.
    write_app(tmp_path, "v2")
    assert offline(app, "compat", "snapshot").returncode == 0
    write_app(tmp_path, "v1")
    back = offline(app, "compat", "check", "--json")
    assert back.returncode == 1
    assert {("resize_image", "removed-param", True), ("welcome", "deleted-job", True),
            ("old_report", "renamed-job", True)} <= kinds(back.stdout)


def test_snapshot_locks_job_names_the_router_has_seen(tmp_path: Path, pg_url: str):
    RoutingTables(pg_url).record_seen(["tests.jobs.add", "gone.module.job"])
    app = write_app(tmp_path, "v1")
    done = run_in(app, "compat", "snapshot", "--json", DATABASE_URL=pg_url)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "tests.jobs.add" in result["jobs"] and result["unresolved"] == ["gone.module.job"]
    assert '"tests.jobs.add": [' in (app / "migrator.lock.json").read_text()
    again = run_in(app, "compat", "snapshot", DATABASE_URL=pg_url)
    assert "unchanged: migrator.lock.json" in again.stdout


def test_check_without_or_with_a_malformed_lock_file_is_bad_input(tmp_path: Path):
    app = write_app(tmp_path, "v1")
    missing = offline(app, "compat", "check")
    assert missing.returncode == 2
    assert "run `migrator compat snapshot`" in missing.stderr
    (app / "migrator.lock.json").write_text('{"format": 1, "jobs": {"a.b": [{"kind": "x"}]}}')
    bad = offline(app, "compat", "check")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: the lock file migrator.lock.json is malformed")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_scan_exits_1_on_v1_payloads_that_v2_cannot_run(tmp_path: Path, redis_url: str, pg_url: str,
                                                          conn: redis.Redis):
    q = RQQueue("default", connection=conn)
    q.enqueue_call("app.jobs.resize_image", args=("a.png", 1, 2))
    q.enqueue_call("app.jobs.send_email", args=(1, "hi"))
    app = write_app(tmp_path, "v2")
    done = run_in(app, "compat", "scan", "--json", REDIS_URL=redis_url, DATABASE_URL=pg_url)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert (report["seen"], report["failing"], report["backends"]) == (2, 1, ["rq", "postgres"])
    human = run_in(app, "compat", "scan", "--backend", "rq", "--job", "app.jobs.resize_image",
                   REDIS_URL=redis_url, DATABASE_URL=pg_url)
    assert human.returncode == 1
    assert "missing a required argument: 'quality'" in human.stdout and "resize_image('a.png', 1, 2)" in human.stdout
    ok = run_in(app, "compat", "scan", "--job", "app.jobs.send_email", REDIS_URL=redis_url, DATABASE_URL=pg_url)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_scan_bad_backend_or_unreachable_redis_exits_2(tmp_path: Path, pg_url: str):
    app = write_app(tmp_path, "v1")
    bad = run_in(app, "compat", "scan", "--backend", "sideways", DATABASE_URL=pg_url)
    assert bad.returncode == 2 and "--backend must be rq, postgres or all" in bad.stderr
    down = run_in(app, "compat", "scan", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", DATABASE_URL=pg_url)
    assert down.returncode == 2 and "unreachable" in down.stderr and "Traceback" not in down.stderr
