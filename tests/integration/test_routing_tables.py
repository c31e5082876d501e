"""The routing store's errors where it meets psycopg: a schema nobody migrated, a server that is not there, and a
schema older than router presence (the app upgraded before `db migrate`) that must still route."""
from __future__ import annotations

import logging

import psycopg
import pytest

from adapters.base import BackendUnavailable, SchemaMissing
from adapters.pg_backend.routing_tables import RoutingTables
from migrator.localservers import free_port
from migrator.routing.cache import CachedFlags
from migrator.routing.flag_store import FlagStore


def test_a_schema_nobody_migrated_says_to_run_db_migrate(pg_url: str) -> None:
    tables = RoutingTables(pg_url, schema="never_migrated")
    for call in (lambda: tables.read_flags("migrator_"), tables.seen_jobs, lambda: tables.history(5),
                 lambda: tables.routers(6.0), lambda: FlagStore(tables).flip("app.jobs.a")):
        with pytest.raises(SchemaMissing, match=r"the routing tables are missing in postgres at .*; run `migrator db "
                                                 r"migrate` first"):
            call()


def test_an_unreachable_store_is_backend_unavailable_with_the_password_masked() -> None:
    tables = RoutingTables(f"postgresql://postgres:secret@127.0.0.1:{free_port()}/postgres", timeout=1)
    with pytest.raises(BackendUnavailable, match=r"postgres is unreachable at postgresql://postgres:\*\*\*@") as err:
        tables.read_flags("migrator_")
    assert "secret" not in str(err.value)
    session = tables.session(timeout=1)
    with pytest.raises(BackendUnavailable):
        session.read_flags("migrator_")
    session.close()


def test_routing_goes_on_when_presence_cannot_be_reported(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Code with router presence on a schema migrated before it (no migrator_routers yet): flips still apply."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE migrator_routers")
    store = FlagStore(RoutingTables(pg_url))
    store.flip("app.jobs.a")
    cached = CachedFlags(store, refresh_seconds=60)
    cached._born -= 60  # old enough to report (a process reports once it has routed for a while)
    try:
        with caplog.at_level(logging.WARNING, logger="migrator.flags"):
            assert cached.refresh() and cached.refresh()
        assert cached.snapshot().flipped == {"app.jobs.a"}
        assert caplog.text.count("could not report this router's routing version") == 1  # once, not per refresh
        assert "run `migrator db migrate` first" in caplog.text
    finally:
        cached.close()
