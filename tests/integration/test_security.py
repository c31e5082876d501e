"""Security properties of docs/security.md on real servers: nothing pickled in Postgres unless opted in (no pickle
import on the new backend's side but in its one opt-in module, and no pickle in any bytea value after a run that
moved RQ's pickled jobs over), and commands that read payloads (drain-check, compat scan, transfer --dry-run,
status) never run job code. The opt-in itself is tested in test_pickled_payloads.py."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import redis
import rq

from adapters.base import JobSpec
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.routing_tables import RoutingTables
from migrator.routing.flag_store import FlagStore
from tests import jobs, security_jobs
from tests.support import ROOT, run_cli, subprocess_env

PICKLERS = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "jsonpickle", "shelve", "marshal"}
PG_SIDE = [ROOT / "adapters" / "pg_backend", ROOT / "adapters" / "payload.py", ROOT / "adapters" / "spec.py"]
TOUCH = f"{security_jobs.touch.__module__}.{security_jobs.touch.__qualname__}"
# The one module allowed to pickle: opt-in pickled payloads (pickle_payloads), which loads a pickle only for a job
# the worker's own configuration opts in. Pickle anywhere else on the new backend's side fails the test below.
PICKLE_OPT_IN = ROOT / "adapters" / "pg_backend" / "pickled.py"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_nothing_that_writes_postgres_imports_a_pickler_but_the_opt_in_module():
    files = [f for p in PG_SIDE for f in ([p] if p.is_file() else sorted(p.rglob("*.py")))]
    assert len(files) > 10
    offenders = {str(f.relative_to(ROOT)): sorted(_imports(f) & PICKLERS) for f in files if _imports(f) & PICKLERS}
    assert offenders == {str(PICKLE_OPT_IN.relative_to(ROOT)): ["pickle"]}


def test_no_pickle_in_any_bytea_value_after_a_run(pg_url, redis_url, ledger_url):
    """Flags written, jobs of every payload type enqueued and run, and RQ's pickled jobs transferred to Postgres:
    every bytea value in the migrator tables is JSON (flipper's items), none a pickle."""
    store = FlagStore(RoutingTables(pg_url))
    store.flip(f"{jobs.add.__module__}.add", by="test")
    store.rollout_percent(25, by="test")
    backend = PostgresBackend(pg_url)
    try:
        backend.enqueue(JobSpec(f"{jobs.echo.__module__}.echo", (Decimal("1.5"), b"\x80\x04raw", {1, 2}),
                                {"at": datetime.now(timezone.utc), "span": timedelta(seconds=3)}, job_id="typed"))
    finally:
        backend.close()
    queue = rq.Queue("default", connection=redis.Redis.from_url(redis_url))
    for i in range(5):
        queue.enqueue(jobs.ledger, f"rq-{i}", job_id=f"rq-{i}")
    queue.connection.close()
    moved = run_cli("transfer", "--all", "--from", "rq", "--to", "postgres", DATABASE_URL=pg_url, REDIS_URL=redis_url)
    assert moved.returncode == 0, moved.stderr[-1000:]
    done = run_cli("worker", "--burst", DATABASE_URL=pg_url, REDIS_URL=redis_url, LEDGER_URL=ledger_url)
    assert done.returncode == 0, done.stderr[-1000:]
    with psycopg.connect(pg_url) as conn:
        columns = conn.execute("SELECT table_name, column_name FROM information_schema.columns WHERE data_type = 'bytea'"
                               " AND table_name LIKE 'migrator\\_%'").fetchall()
        # a new bytea column: look at what it holds, then add it here. pickled_payload is the opt-in's, NULL unless a
        # job is opted in (pickle_payloads), and none is in this run.
        assert sorted(columns) == [("migrator_flags", "item"), ("migrator_jobs", "pickled_payload")]
        pickled = conn.execute("SELECT count(*) FROM migrator_jobs WHERE pickled_payload IS NOT NULL").fetchone()[0]  # type: ignore[index]
        assert pickled == 0
        values = [bytes(v) for (v,) in conn.execute("SELECT item FROM migrator_flags")]
        finished = conn.execute("SELECT count(*) FROM migrator_jobs WHERE state = 'finished'").fetchone()[0]  # type: ignore[index]
    assert len(values) >= 2 and finished >= 6
    assert [v[:1] for v in values if v[:1] == b"\x80"] == []  # the pickle protocol 2+ opcode
    for value in values:
        json.loads(value)


def _run(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrator", *argv], cwd=cwd, env=subprocess_env(**env),
                          capture_output=True, text=True, timeout=120)


def test_reading_payloads_never_runs_job_code(pg_url, redis_url, tmp_path):
    """A job whose run writes a file waits in both backends (queued and scheduled); every command that reads
    payloads runs; the file never appears."""
    marker = tmp_path / "ran"
    (tmp_path / "migrator.toml").write_text(f'job_modules = ["{security_jobs.__name__}"]\n')
    queue = rq.Queue("default", connection=redis.Redis.from_url(redis_url))
    queue.enqueue(security_jobs.touch, str(marker), job_id="rq-queued")
    queue.enqueue_in(timedelta(hours=1), security_jobs.touch, str(marker), job_id="rq-scheduled")
    queue.connection.close()
    backend = PostgresBackend(pg_url)
    try:
        backend.enqueue(JobSpec(TOUCH, (str(marker),), job_id="pg-queued"))
        backend.enqueue(JobSpec(TOUCH, (str(marker),), job_id="pg-scheduled",
                                run_at=datetime.now(timezone.utc) + timedelta(hours=1)))
    finally:
        backend.close()
    env = {"DATABASE_URL": pg_url, "REDIS_URL": redis_url}
    commands = [("drain-check", "--backend", "all", "--json"), ("compat", "scan", "--backend", "all", "--json"),
                ("transfer", "--all", "--dry-run", "--json"), ("status", "--json"), ("jobs", "show", "pg-queued")]
    for argv in commands:
        done = _run(*argv, cwd=tmp_path, **env)
        assert done.returncode in (0, 1), (argv, done.stderr[-1000:])
    drain = json.loads(_run("drain-check", "--backend", "all", "--json", cwd=tmp_path, **env).stdout)
    assert drain["pending"] == {"rq": 2, "postgres": 2}
    assert not marker.exists()


def _trap(redis_url: str, tmp_path: Path) -> Path:
    marker = tmp_path / "unpickled"
    (tmp_path / "migrator.toml").write_text(f'job_modules = ["{security_jobs.__name__}"]\n')
    queue = rq.Queue("default", connection=redis.Redis.from_url(redis_url))
    queue.enqueue(security_jobs.touch, security_jobs.Trap(str(marker)), job_id="trap")
    queue.connection.close()
    return marker


def test_drain_check_and_status_never_unpickle_rq_payloads(pg_url, redis_url, tmp_path):
    """They read the job name with pickletools (opcodes, no objects built): a hostile pickle runs nothing."""
    marker = _trap(redis_url, tmp_path)
    env = {"DATABASE_URL": pg_url, "REDIS_URL": redis_url}
    for argv in (("drain-check", "--backend", "all", "--json"), ("status", "--json"), ("drain-check", "--job", TOUCH)):
        done = _run(*argv, cwd=tmp_path, **env)
        assert done.returncode in (0, 1), (argv, done.stderr[-1000:])
    assert not marker.exists()


def test_compat_scan_and_transfer_never_unpickle_rq_payloads(pg_url, redis_url, tmp_path):
    """They read RQ's pickles with adapters.rq_backend.safe_pickle: only plain data types are built, anything else
    a pickle names stays an opaque value: the trap's payload runs nothing, and the transfer refuses it by name."""
    marker = _trap(redis_url, tmp_path)
    env = {"DATABASE_URL": pg_url, "REDIS_URL": redis_url}
    for argv in (("compat", "scan", "--backend", "rq", "--json"), ("transfer", "--all", "--dry-run", "--json"),
                 ("transfer", "--all", "--json")):
        done = _run(*argv, cwd=tmp_path, **env)
        assert done.returncode in (0, 1), (argv, done.stderr[-1000:])
    assert not marker.exists()
    refused = json.loads(done.stdout)["refused"]
    assert [r["job_id"] for r in refused] == ["trap"], refused
    assert refused[0]["reason"].startswith("args[0] is a tests.security_jobs.touch,"), refused  # what the pickle named
    assert rq.job.Job.exists("trap", connection=redis.Redis.from_url(redis_url))  # refused: still in RQ
