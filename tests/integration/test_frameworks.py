"""Real framework apps on the new backend: a minimal Django project through django-rq (migrator's queue class in
its RQ settings), and a Flask app whose job needs an app context, each run by `migrator worker --setup`."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.pg_backend.routing_tables import RoutingTables
from migrator.routing.flag_store import FlagStore
from tests.support import ROOT, ledger_counts, run_cli, subprocess_env

pytest.importorskip("django", reason="the Django recipe needs django and django-rq (the frameworks extra, which ./dev test installs)")
pytest.importorskip("flask", reason="the Flask recipe needs flask (the frameworks extra, which ./dev test installs)")
GREET = "tests.django_app.jobs.greet"


def django_env(tmp_path: Path, redis_url: str, pg_url: str, **extra: str) -> dict[str, str]:
    return {"DJANGO_SETTINGS_MODULE": "tests.django_app.settings", "DJANGO_DB": str(tmp_path / "app.sqlite3"),
            "REDIS_URL": redis_url, "DATABASE_URL": pg_url, **extra}


def run_app(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "tests.django_app.app"], cwd=ROOT, env=subprocess_env(**env),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def greeted(env: dict[str, str]) -> dict[str, bool]:
    with sqlite3.connect(env["DJANGO_DB"]) as db:
        return {name: bool(flag) for name, flag in db.execute("SELECT name, greeted FROM django_app_greeting")}


def test_a_django_job_flipped_to_postgres_runs_on_the_new_worker_with_django_set_up(tmp_path, redis_url, pg_url):
    FlagStore(RoutingTables(pg_url)).flip(GREET, by="test")
    env = django_env(tmp_path, redis_url, pg_url, RQ_COMMIT="on_db_commit")
    out = run_app(env)
    assert out["backend"] == "postgres" and out["greeted"] is False
    done = run_cli("worker", "--burst", "--setup", "tests.django_app.worker:setup", **env)
    assert done.returncode == 0, done.stderr[-3000:]
    # bob's enqueue was inside a transaction that rolled back: on_db_commit never sent it
    assert greeted(env) == {"ada": True, "bob": False}


def test_django_rq_async_false_still_runs_jobs_inline_for_the_apps_tests(tmp_path, redis_url, pg_url):
    env = django_env(tmp_path, redis_url, pg_url, RQ_ASYNC="0")
    out = run_app(env)
    assert out["greeted"] is True  # ran in the app's own process at enqueue, as django-rq's ASYNC False does


def test_a_flask_job_needing_an_app_context_runs_on_the_new_worker(redis_url, pg_url, ledger_url):
    pytest.importorskip("flask")
    FlagStore(RoutingTables(pg_url)).flip("tests.flask_app.record_greeting", by="test")
    done = subprocess.run([sys.executable, "-c", "from tests.flask_app import main; main()"], cwd=ROOT, capture_output=True, text=True,
                          env=subprocess_env(REDIS_URL=redis_url, DATABASE_URL=pg_url, LEDGER_URL=ledger_url),
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["backend"] == "postgres"
    worker = run_cli("worker", "--burst", "--setup", "tests.flask_app:push_app_context", LEDGER_URL=ledger_url,
                     DATABASE_URL=pg_url, REDIS_URL=redis_url)
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert ledger_counts(ledger_url) == {"hello from the migration app": 1}
