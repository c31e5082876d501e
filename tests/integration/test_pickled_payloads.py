"""Opt-in pickled payloads (pickle_payloads) on real servers: an app that passes objects to an opted-in job moves
it to the new backend and a real `migrator worker` runs it with the object; a job not opted in is refused at
enqueue; a pickled row of a job the worker does not opt in is failed without being unpickled; transfer carries an
opted-in RQ job's object; status and compat scan show what travels pickled."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import rq

from adapters.base import BackendName, JobRefused, JobSpec, PickleOptIn
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.routing_tables import RoutingTables
from adapters.rq_backend import RQBackend
from migrator import Queue, Router
from migrator.routing.cache import CachedFlags
from migrator.routing.flag_store import FlagStore
from migrator.routing.router import REFUSED_META
from tests import pickle_jobs, security_jobs
from tests.pickle_jobs import ARCHIVE, SEND, Invoice
from tests.support import subprocess_env

OPT_IN = PickleOptIn(frozenset({SEND}))
TOML = f'job_modules = ["{pickle_jobs.__name__}"]\npickle_payloads = ["{SEND}"]\n'


def migrator_cli(cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`migrator ARGV` run in `cwd`, so that it reads that folder's migrator.toml (its own pickle_payloads)."""
    return subprocess.run([sys.executable, "-m", "migrator", *argv], cwd=cwd, env=subprocess_env(**env),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "migrator.toml").write_text(TOML)
    return tmp_path


@pytest.fixture
def router(pg_url: str, redis_url: str):
    """The app's router, opted in like app_dir's migrator.toml, with send_invoice and archive_invoice flipped."""
    store = FlagStore(RoutingTables(pg_url))
    store.flip(SEND, by="test")
    store.flip(ARCHIVE, by="test")
    r = Router(RQBackend(redis_url), PostgresBackend(pg_url, pickles=OPT_IN), CachedFlags(store, 0.1).start())
    yield r
    r.close()


def rows(pg_url: str) -> dict[str, tuple[Any, ...]]:
    """id -> (state, args, pickled_payload is set, result, error_type, error_message)."""
    with psycopg.connect(pg_url) as conn:
        found = conn.execute("SELECT id, state, args, pickled_payload IS NOT NULL, result, error_type, error_message "
                             "FROM migrator_jobs").fetchall()
    return {r[0]: tuple(r[1:]) for r in found}


def seen(invoice: Invoice, note: str = "") -> dict[str, Any]:
    return {"type": "tests.pickle_jobs.Invoice", "number": invoice.number, "customer": invoice.customer,
            "total": invoice.total(), "note": note}


def test_opted_in_job_with_an_object_runs_on_a_real_worker(router, pg_url, app_dir):
    queue = Queue("default", router=router)
    one = Invoice(1, "ACME", [3, 4])
    handle = queue.enqueue(pickle_jobs.send_invoice, one, note="first")
    plain = queue.enqueue(pickle_jobs.send_invoice, "not an invoice")  # JSON-able: stays tagged JSON
    two, three = Invoice(2, "Initech", [5]), Invoice(3, "Umbrella", [])
    many = queue.enqueue_many([Queue.prepare_data(pickle_jobs.send_invoice, (two,), job_id="many-2"),
                               Queue.prepare_data(pickle_jobs.send_invoice, (three,), {"note": "n"}, job_id="many-3")])
    assert handle.backend is BackendName.POSTGRES and [m.backend for m in many] == [BackendName.POSTGRES] * 2
    before = rows(pg_url)
    assert before[handle.id][1:3] == ({"__t": "pickled", "v": "args"}, True)  # the object is stored apart
    assert before[plain.id][1:3] == (["not an invoice"], False)

    done = migrator_cli(app_dir, "worker", "--burst", DATABASE_URL=pg_url)
    assert done.returncode == 0, done.stderr[-2000:]
    after = rows(pg_url)
    assert after[handle.id][0] == "finished" and after[handle.id][3] == seen(one, "first")
    assert after["many-2"][3] == seen(two) and after["many-3"][3] == seen(three, "n")
    assert after[plain.id][0] == "failed" and after[plain.id][4] == "AttributeError"  # a str has no .number


def test_a_job_not_opted_in_is_refused_at_enqueue_as_before(router, pg_url):
    """Not opted in: the new backend refuses the object by name (the router then sends it to RQ, marked), and the
    refusal says how to opt in; nothing is pickled."""
    invoice = Invoice(9, "Hooli")
    for backend in (PostgresBackend(pg_url), PostgresBackend(pg_url, pickles=OPT_IN)):
        try:
            with pytest.raises(JobRefused, match=r"args\[0\] is a tests\.pickle_jobs\.Invoice.*pickle_payloads"):
                backend.enqueue(JobSpec(ARCHIVE, (invoice,)))
            assert backend.refusal(JobSpec(ARCHIVE, (invoice,))) is not None
            assert (backend.refusal(JobSpec(SEND, (invoice,))) is None) is bool(backend.pickles)
        finally:
            backend.close()
    handle = Queue("default", router=router).enqueue(pickle_jobs.archive_invoice, invoice)
    assert handle.backend is BackendName.RQ
    assert handle.meta[REFUSED_META]["reason"].startswith("args[0] is a tests.pickle_jobs.Invoice")
    assert rows(pg_url) == {}


def test_the_worker_refuses_a_pickled_row_of_a_job_it_does_not_opt_in(pg_url, app_dir, tmp_path):
    """A row written straight into migrator_jobs (by anyone who can write the table) with a pickle for a job the
    worker's own configuration does not opt in: failed for good with the reason, the pickle never loaded (its
    unpickling would create a file). The same worker loads an opted-in job's pickle, so it does unpickle."""
    marker = tmp_path / "unpickled"
    hostile = pickle.dumps(((security_jobs.Trap(str(marker)),), {}))
    legit = pickle.dumps(((Invoice(5, "Globex", [1]),), {}))
    with psycopg.connect(pg_url) as conn:
        for job_id, func, data in (("hostile", ARCHIVE, hostile), ("legit", SEND, legit)):
            conn.execute("INSERT INTO migrator_jobs (id, queue, func, args, kwargs, retry_max, pickled_payload) "
                         "VALUES (%s, 'default', %s, '[]', '{}', 3, %s)", [job_id, func, data])
    done = migrator_cli(app_dir, "worker", "--burst", DATABASE_URL=pg_url)
    assert done.returncode == 0, done.stderr[-2000:]
    found = rows(pg_url)
    state, _, _, _, error_type, message = found["hostile"]
    assert (state, error_type) == ("failed", "NotOptedIn")  # failed for good: retry_max 3 is not used
    assert f"the arguments of {ARCHIVE} are pickled" in message and "does not opt it in" in message
    assert not marker.exists()
    assert found["legit"][0] == "finished" and found["legit"][3] == seen(Invoice(5, "Globex", [1]))


def test_a_worker_without_the_opt_in_refuses_every_pickled_row(pg_url, backend, tmp_path):
    """The enqueuing side's configuration does not decide: a worker that does not opt the job in refuses it."""
    enqueuer = PostgresBackend(pg_url, pickles=OPT_IN)
    try:
        placed = enqueuer.enqueue(JobSpec(SEND, (Invoice(6, "Stark"),)))
    finally:
        enqueuer.close()
    (tmp_path / "migrator.toml").write_text(f'job_modules = ["{pickle_jobs.__name__}"]\n')
    done = migrator_cli(tmp_path, "worker", "--burst", DATABASE_URL=pg_url)
    assert done.returncode == 0, done.stderr[-2000:]
    assert rows(pg_url)[placed.job_id][0::4] == ("failed", "NotOptedIn")


def test_transfer_carries_an_opted_in_rq_job_with_an_object(pg_url, redis_url, app_dir):
    """RQ pickled the invoice; transfer moves the opted-in job with it (pickled on the new backend) and a real worker
    runs it; the job not opted in stays in RQ with the reason."""
    queue = rq.Queue("default", connection=redis.Redis.from_url(redis_url))
    invoice = Invoice(7, "Wayne", [10, 20])
    queue.enqueue(pickle_jobs.send_invoice, invoice, note="moved", job_id="rq-send")
    queue.enqueue(pickle_jobs.archive_invoice, invoice, job_id="rq-archive")
    env = {"DATABASE_URL": pg_url, "REDIS_URL": redis_url}
    moved = migrator_cli(app_dir, "transfer", "--all", "--from", "rq", "--to", "postgres", "--json", **env)
    report = json.loads(moved.stdout)
    assert [(r["job_id"], "pickle_payloads" in r["reason"]) for r in report["refused"]] == [("rq-archive", True)]
    assert sorted(queue.job_ids) == ["rq-archive"]
    assert rows(pg_url)["rq-send"][1:3] == ({"__t": "pickled", "v": "args"}, True)
    done = migrator_cli(app_dir, "worker", "--burst", **env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert rows(pg_url)["rq-send"][0] == "finished" and rows(pg_url)["rq-send"][3] == seen(invoice, "moved")
    queue.connection.close()


def test_status_and_compat_scan_show_pickled_payloads_without_unpickling(pg_url, redis_url, app_dir, tmp_path):
    """status lists the opt-in and the pickled jobs waiting (a row of a job not opted in named apart); compat scan
    counts what travels pickled, passes the opted-in ones and fails the other. Neither unpickles a row of the new
    backend: the one not opted in would create a file."""
    enqueuer = PostgresBackend(pg_url, pickles=OPT_IN)
    try:
        enqueuer.enqueue(JobSpec(SEND, (Invoice(1, "ACME"),), job_id="pg-send"))
    finally:
        enqueuer.close()
    marker = tmp_path / "unpickled"
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO migrator_jobs (id, queue, func, pickled_payload) VALUES ('pg-hostile', 'default', "
                     "%s, %s)", [ARCHIVE, pickle.dumps(((security_jobs.Trap(str(marker)),), {}))])
    queue = rq.Queue("default", connection=redis.Redis.from_url(redis_url))
    queue.enqueue(pickle_jobs.send_invoice, Invoice(2, "Wayne"), job_id="rq-send")
    queue.connection.close()
    env = {"DATABASE_URL": pg_url, "REDIS_URL": redis_url}

    status = migrator_cli(app_dir, "status", "--json", **env)
    assert status.returncode == 0, status.stderr[-2000:]
    assert json.loads(status.stdout)["pickle_payloads"] == {"opted_in": [SEND], "pending": {ARCHIVE: 1, SEND: 1},
                                                            "error": None, "not_opted_in": [ARCHIVE]}
    text = migrator_cli(app_dir, "status", **env).stdout
    assert f"pickled payloads (pickle_payloads): opted in for {SEND}; 2 pending pickled" in " ".join(text.split())

    scan = migrator_cli(app_dir, "compat", "scan", "--backend", "all", "--json", **env)
    assert scan.returncode == 1, scan.stderr[-2000:]  # the row not opted in fails the scan
    report = json.loads(scan.stdout)
    jobs = {j["job"]: j for j in report["jobs"]}
    assert (jobs[SEND]["seen"], jobs[SEND]["pickled"], jobs[SEND]["failing"]) == (2, 2, 0)  # one each side
    assert (jobs[ARCHIVE]["pickled"], jobs[ARCHIVE]["failing"]) == (1, 1)
    assert "does not opt this job in" in jobs[ARCHIVE]["reasons"][0]["reason"]
    assert report["pickled"] == 3 and report["pickle_payloads"] == [SEND]
    assert not marker.exists()
