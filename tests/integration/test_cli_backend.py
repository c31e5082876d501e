"""`migrator db migrate` and `migrator canary` as a user runs them."""
from __future__ import annotations

import json
import subprocess
import sys

import psycopg

from adapters.pg_backend import schema
from adapters.pg_backend import sql as named
from tests.support import ROOT, run_cli, spawn_cli, subprocess_env, wait_for


def test_two_concurrent_migrations_of_an_empty_database(pg_server):
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS migrate_race")
        conn.execute("CREATE DATABASE migrate_race")
    url = pg_server.url_for("migrate_race")
    try:
        procs = [subprocess.Popen([sys.executable, "-m", "migrator", "db", "migrate", "--json"], cwd=ROOT,
                                  env=subprocess_env(DATABASE_URL=url), stdout=subprocess.PIPE, text=True)
                 for _ in range(3)]
        outputs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
        assert all(p.returncode == 0 for p in procs)
        applied = sorted(len(o["applied"]) for o in outputs)
        assert applied == [0, 0, len(named.migrations())]  # exactly one process applied them
        with psycopg.connect(url) as conn:
            assert schema.current_version(conn, "public") == schema.latest_version()
    finally:
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS migrate_race WITH (FORCE)")


def test_migrate_says_up_to_date(pg_url):
    done = run_cli("db", "migrate", DATABASE_URL=pg_url)
    assert done.returncode == 0
    assert "is up to date" in done.stdout


def test_canary_with_a_worker(pg_url, backend):
    worker = spawn_cli("worker", DATABASE_URL=pg_url)
    try:
        wait_for(lambda: [w for w in backend.workers() if w.alive], what="worker")
        done = run_cli("canary", "--timeout", "20", "--json", DATABASE_URL=pg_url)
    finally:
        worker.terminate()
        worker.wait(30)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["state"] == "finished" and report["live_workers"] == 1


def test_canary_without_a_worker_says_so_and_leaves_nothing(pg_url, backend):
    done = run_cli("canary", "--timeout", "1", DATABASE_URL=pg_url)
    assert done.returncode == 1
    assert "no live migrator worker serves queue 'default'" in done.stderr
    assert backend.counts() == []


def test_bad_database_url_is_one_line_exit_2():
    done = run_cli("db", "migrate", DATABASE_URL="postgresql://me:secret@127.0.0.1:1/x")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "secret" not in done.stderr
