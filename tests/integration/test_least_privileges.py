"""adapters/pg_backend/sql/roles.sql on a real Postgres: login roles in migrator_app, migrator_worker and
migrator_operator do their work through migrator's own code, and Postgres itself refuses what each must not do."""
from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import errors

from adapters.base import BackendName, JobSpec
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.routing_tables import RoutingTables
from adapters.rq_backend import RQBackend
from migrator.localservers import LocalPostgres
from migrator.queue import Queue
from migrator.routing.cache import CachedFlags
from migrator.routing.flag_store import FlagStore
from migrator.routing.router import Router
from tests import jobs
from tests.support import ROOT, ledger_counts, run_cli, wait_for

ROLES_SQL = ROOT / "adapters" / "pg_backend" / "sql" / "roles.sql"
GROUPS = ("migrator_app", "migrator_worker", "migrator_operator")
_serial = itertools.count()


@dataclass(frozen=True, slots=True)
class Logins:
    app: str
    worker: str
    operator: str


def _name(fn: object) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"  # type: ignore[attr-defined]


@pytest.fixture
def logins(pg_server: LocalPostgres, pg_url: str) -> Iterator[Logins]:
    """roles.sql applied in this test's database, and one login role per group (trust auth: no password)."""
    dbname = pg_url.rsplit("/", 1)[1]
    tag = f"{os.getpid()}_{next(_serial)}"
    users = {group: f"{group}_{tag}" for group in GROUPS}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(ROLES_SQL.read_text())  # type: ignore[arg-type]
        for group, user in users.items():
            conn.execute(f"CREATE ROLE {user} LOGIN IN ROLE {group}")  # type: ignore[arg-type]
    try:
        yield Logins(*(pg_server.url_for(dbname).replace("postgres@", f"{users[g]}@", 1) for g in GROUPS))
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            for user in users.values():
                conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{user}'")  # type: ignore[arg-type]
            everyone = ", ".join([*users.values(), *GROUPS])
            conn.execute(f"DROP OWNED BY {everyone}")  # type: ignore[arg-type]
            for user in users.values():
                conn.execute(f"DROP ROLE {user}")  # type: ignore[arg-type]
        # the group roles stay for other databases of this cluster only if they still hold grants there
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            for group in GROUPS:
                try:
                    conn.execute(f"DROP ROLE IF EXISTS {group}")  # type: ignore[arg-type]
                except errors.DependentObjectsStillReferenced:
                    pass


def refused(url: str, statement: str) -> None:
    """Postgres itself says no (insufficient_privilege), whatever migrator's code would have allowed."""
    with psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement)  # type: ignore[arg-type]


def test_the_app_role_enqueues_reads_flags_and_reports_itself_and_nothing_more(logins, pg_url, redis_url):
    FlagStore(RoutingTables(logins.operator)).flip(_name(jobs.add), by="test")
    flags = CachedFlags(FlagStore(RoutingTables(logins.app)), 0.1).start()
    router = Router(RQBackend(redis_url), PostgresBackend(logins.app), flags)
    try:
        q = Queue("default", router=router)
        one = q.enqueue(jobs.add, 1, 2, meta={"tenant": 7})
        assert one.backend is BackendName.POSTGRES
        q.enqueue_many([Queue.prepare_data(jobs.add, (i, i)) for i in range(3)])
        child = q.enqueue(jobs.add, 3, 4, depends_on=one)  # FOR SHARE on the parent: UPDATE (meta) suffices
        assert child.backend is BackendName.POSTGRES
        assert Queue("default", router=router).fetch_job(one.id) is not None
        one.meta["seen"] = True
        one.save_meta()
        with psycopg.connect(pg_url) as owner:  # seen job names and presence were written by the app role
            wait_for(lambda: owner.execute("SELECT count(*) FROM migrator_routers").fetchone()[0] == 1,  # type: ignore[index]
                     timeout=15, what="the app's presence row")
            seen = owner.execute("SELECT name FROM migrator_seen_jobs").fetchall()
        assert (_name(jobs.add),) in seen
    finally:
        router.close()
    refused(logins.app, "DELETE FROM migrator_jobs")
    refused(logins.app, "UPDATE migrator_jobs SET state = 'canceled'")
    refused(logins.app, "UPDATE migrator_flags SET item = item")
    refused(logins.app, "INSERT INTO migrator_routing_history (actor, action, before, after) VALUES ('x', 'x', '{}', '{}')")
    refused(logins.app, "DELETE FROM migrator_workers")
    refused(logins.app, "SELECT * FROM migrator_transfers")
    with pytest.raises(Exception) as raised:  # migrator's own flip, as the app role: refused by Postgres
        FlagStore(RoutingTables(logins.app)).flip(_name(jobs.echo), by="app")  # a change: it must write
    assert "permission denied" in str(raised.value) or isinstance(raised.value.__cause__, errors.InsufficientPrivilege)


def test_the_worker_role_runs_jobs_and_cannot_route_them(logins, pg_url, redis_url, ledger_url):
    backend = PostgresBackend(pg_url)
    try:
        for key in ("a", "b", "c"):
            backend.enqueue(JobSpec(_name(jobs.ledger), (key,), job_id=key))
        backend.enqueue(JobSpec(_name(jobs.boom), ("refused?",), job_id="fails"))
    finally:
        backend.close()
    done = run_cli("worker", "--burst", DATABASE_URL=logins.worker, REDIS_URL=redis_url, LEDGER_URL=ledger_url)
    assert done.returncode == 0, done.stderr[-2000:]
    assert ledger_counts(ledger_url) == {"a": 1, "b": 1, "c": 1}
    with psycopg.connect(pg_url) as owner:
        states = dict(owner.execute("SELECT id, state FROM migrator_jobs").fetchall())
    assert states.get("fails") == "failed"
    refused(logins.worker, "UPDATE migrator_flags SET item = item")
    refused(logins.worker, "DELETE FROM migrator_routing_history")
    refused(logins.worker, "DELETE FROM migrator_transfers")
    refused(logins.worker, "DROP TABLE migrator_jobs")


def test_the_operator_role_routes_and_manages_jobs_but_changes_no_schema(logins, pg_url, redis_url):
    env = {"DATABASE_URL": logins.operator, "REDIS_URL": redis_url}
    for argv in (("flip", _name(jobs.add), "--force"), ("rollout", "--percent", "10"), ("rollback",), ("history",),
                 ("status", "--json"), ("jobs", "counts"), ("jobs", "purge", "--older-than", "1d")):
        done = run_cli(*argv, **env)
        assert done.returncode == 0, (argv, done.stdout[-500:], done.stderr[-1000:])
    done = run_cli("drain-check", "--backend", "all", "--json", **env)
    assert done.returncode == 0, done.stderr[-1000:]
    refused(logins.operator, "DROP TABLE migrator_jobs")
    refused(logins.operator, "ALTER TABLE migrator_jobs ADD COLUMN x int")
    refused(logins.operator, "CREATE TABLE migrator_extra (x int)")


def test_every_migrator_table_is_granted_to_the_operator_and_none_has_ddl_rights(logins, pg_url):
    """A table added by a later migration without a grant in roles.sql would fail the CLI at run time."""
    with psycopg.connect(pg_url) as conn:
        tables = [t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'migrator\\_%'")]
        rows = [t for t in tables if t != "migrator_schema_version"]  # written by db migrate (the owner) only
        missing = [t for t in rows if not conn.execute(  # has_table_privilege: true if any of the listed
            "SELECT bool_and(has_table_privilege('migrator_operator', %s, p)) FROM unnest(%s::text[]) p",
            [t, ["SELECT", "INSERT", "UPDATE", "DELETE"]]).fetchone()[0]]
        ddl = [(g, t) for g in GROUPS for t in tables if conn.execute(
            "SELECT has_table_privilege(%s, %s, 'TRUNCATE, REFERENCES, TRIGGER')", [g, t]).fetchone()[0]]
    assert len(tables) >= 11 and missing == [] and ddl == []
