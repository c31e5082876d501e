"""Routing flags through the real flag store: round trips, long names, concurrent edits, the cache across
processes, and the store going away."""
from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from flipper import FeatureFlagClient, PostgreSQLFeatureFlagStore

from adapters.pg_backend import schema
from adapters.pg_backend.routing_tables import RoutingTables
from migrator.routing import decide as router, history
from migrator.routing.cache import CachedFlags
from migrator.routing.flag_store import FlagStore
from migrator.routing.flipper_items import NAME_LIMIT, ROLLOUT_FLAG, job_flag_name
from migrator.routing.snapshot import LEGACY
from migrator.localservers import LocalPostgres, free_port
from tests.support import ROOT, subprocess_env, wait_for

LONG = "app.jobs.billing.invoices.reconciliation.nightly.send_overdue_reminder_emails_to_customers"


@pytest.fixture
def store(pg_url: str) -> FlagStore:
    return FlagStore(RoutingTables(pg_url))


def test_flip_pin_unflip_round_trip(store: FlagStore) -> None:
    store.flip("app.jobs.a")
    store.pin("app.jobs.b")
    s = store.snapshot()
    assert (s.flipped, s.pinned, s.version) == ({"app.jobs.a"}, {"app.jobs.b"}, 2)
    store.pin("app.jobs.a")
    store.unflip("app.jobs.b")
    s = store.snapshot()
    assert (s.flipped, s.pinned) == (set(), {"app.jobs.a"})


def test_rollout_percent_all_and_rollback(store: FlagStore) -> None:
    store.flip("app.jobs.a")
    store.pin("app.jobs.b")
    store.rollout_percent(12.34)
    assert store.snapshot().percent == 12.34 and not store.snapshot().rollout_all
    store.rollout_all()
    assert store.snapshot().rollout_all
    change = store.rollback(by="alice")
    assert change.after.is_legacy and not change.after.pinned
    assert store.snapshot() == change.after
    assert change.entry is not None and change.entry.actor == "alice"
    assert change.entry.restore_commands == ["migrator flip app.jobs.a --force",
                                             "migrator flip app.jobs.b --back --force", "migrator rollout --all"]


def test_rollback_is_one_recorded_step(store: FlagStore, pg_url: str) -> None:
    for i in range(5):
        store.flip(f"app.jobs.j{i}")
    store.rollback()
    entries = history.entries(RoutingTables(pg_url))
    assert [e.action for e in entries[:2]] == ["rollback", "flip"]
    assert len(entries[0].before.flipped) == 5 and entries[0].after.is_legacy
    with psycopg.connect(pg_url) as conn:  # nothing of the per-job flags is left behind
        assert conn.execute("SELECT name FROM migrator_flags").fetchall() == [(ROLLOUT_FLAG,)]


def test_an_edit_that_changes_nothing_is_not_recorded(store: FlagStore, pg_url: str) -> None:
    store.flip("app.jobs.a")
    again = store.flip("app.jobs.a")
    assert again.entry is None and again.before == again.after
    assert len(history.entries(RoutingTables(pg_url))) == 1


def test_percent_outside_range_is_refused(store: FlagStore) -> None:
    for bad in (-1, 100.5, float("nan")):
        with pytest.raises(Exception, match="between 0 and 100"):
            store.rollout_percent(bad)


def test_job_names_longer_than_flippers_40_characters(store: FlagStore, pg_url: str) -> None:
    other = LONG.replace("customers", "partners")  # same first 40 characters
    store.flip(LONG)
    store.pin(other)
    assert len(LONG) > NAME_LIMIT and len(job_flag_name(LONG)) <= NAME_LIMIT
    s = store.snapshot()
    assert s.flipped == {LONG} and s.pinned == {other}


def test_flippers_own_client_reads_what_migrator_wrote(store: FlagStore, pg_url: str) -> None:
    client = FeatureFlagClient(PostgreSQLFeatureFlagStore(pg_url, table_name="migrator_flags", run_migrations=False))
    store.flip(LONG)
    store.pin("app.jobs.b")
    store.rollout_percent(100)
    assert client.is_enabled(job_flag_name(LONG))
    assert not client.is_enabled(job_flag_name("app.jobs.b"))
    assert client.is_enabled(ROLLOUT_FLAG, job="app.jobs.anything", other_keyword="ignored by key_whitelist")
    store.rollout_percent(0)
    assert not client.is_enabled(ROLLOUT_FLAG, job="app.jobs.anything")


def test_flippers_own_edits_are_read_back(store: FlagStore, pg_url: str) -> None:
    store.flip("app.jobs.a")
    client = FeatureFlagClient(PostgreSQLFeatureFlagStore(pg_url, table_name="migrator_flags", run_migrations=False))
    client.disable(job_flag_name("app.jobs.a"))  # someone used flipper directly: disabled means legacy
    assert store.snapshot().pinned == {"app.jobs.a"}


def test_concurrent_edits_from_threads_are_all_kept(store: FlagStore, pg_url: str) -> None:
    errors: list[BaseException] = []

    def edit(worker: int) -> None:
        try:
            for i in range(8):
                (store.flip if i % 2 else store.pin)(f"app.jobs.w{worker}_{i}")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=edit, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    s = store.snapshot()
    assert len(s.flipped) == 24 and len(s.pinned) == 24 and s.version == 48
    versions = sorted(e.after.version for e in history.entries(RoutingTables(pg_url), limit=100))
    assert versions == list(range(1, 49))


def test_record_seen_makes_a_job_known(pg_url: str) -> None:
    cached = CachedFlags(FlagStore(RoutingTables(pg_url)), refresh_seconds=60)
    cached.record_seen(["app.jobs.x", "app.jobs.y"])
    cached.record_seen(["app.jobs.x"])
    assert cached.refresh()
    assert RoutingTables(pg_url).seen_jobs() == ["app.jobs.x", "app.jobs.y"]
    cached.close()


WATCHER = """
import sys, time
from migrator.routing.cache import CachedFlags
from migrator import wiring
from migrator.config import Settings
cached = CachedFlags(wiring.flag_store(Settings(database_url=sys.argv[1])), refresh_seconds=float(sys.argv[2])).start()
print("ready", cached.snapshot().version, flush=True)
seen = cached.snapshot().version
while True:
    s = cached.snapshot()
    if s.version != seen:
        seen = s.version
        print("version", s.version, ",".join(sorted(s.flipped)), flush=True)
    time.sleep(0.005)
"""


@pytest.fixture
def watcher(pg_url: str) -> Iterator[queue.Queue[str]]:
    """A second process that prints each routing version its CachedFlags sees (default 1 s refresh)."""
    proc = subprocess.Popen([sys.executable, "-c", WATCHER, pg_url, "1.0"], cwd=ROOT, env=subprocess_env(),
                            stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in proc.stdout or ()], daemon=True).start()
    try:
        yield lines
    finally:
        proc.kill()
        proc.wait()


def test_a_change_reaches_another_process(store: FlagStore, watcher: queue.Queue[str]) -> None:
    assert watcher.get(timeout=30).startswith("ready")
    store.flip("app.jobs.a")
    # The bound is one refresh period (1 s) plus one read; the generous timeout only keeps a slow CI green.
    assert watcher.get(timeout=10) == "version 1 app.jobs.a"
    store.rollback()
    assert watcher.get(timeout=10) == "version 2"


def test_never_known_routes_everything_legacy(caplog: pytest.LogCaptureFixture) -> None:
    nowhere = RoutingTables(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    cached = CachedFlags(FlagStore(nowhere), refresh_seconds=0.1)
    with caplog.at_level(logging.ERROR, logger="migrator.flags"):
        cached.start()
    try:
        assert cached.snapshot() is LEGACY and not cached.known
        assert router.decide("app.jobs.a", cached.snapshot()) == router.DEFAULT
        assert "never read" in caplog.text
    finally:
        cached.close()


@pytest.fixture
def own_server() -> Iterator[LocalPostgres]:
    """A Postgres of this test alone, so that the test can really stop it (in a folder of its own: pytest keeps
    its tmp_path root at mode 700, out of reach of the unprivileged user Postgres runs as)."""
    with tempfile.TemporaryDirectory(prefix="migrator-flags-") as d:
        server = LocalPostgres(Path(d) / "pg", durable=False).start()
        try:
            schema.migrate(server.url)
            yield server
        finally:
            server.stop("immediate")


def test_store_stopped_keeps_last_known_routing(own_server: LocalPostgres, caplog: pytest.LogCaptureFixture) -> None:
    store = FlagStore(RoutingTables(own_server.url))
    store.flip("app.jobs.a")
    store.rollout_percent(30)
    cached = CachedFlags(store, refresh_seconds=0.1).start()
    try:
        known = cached.snapshot()
        assert known.flipped == {"app.jobs.a"} and known.percent == 30
        with caplog.at_level(logging.WARNING, logger="migrator.flags"):
            own_server.stop("fast")  # a real stop; "fast" so the flags written above survive the restart
            assert not cached.refresh()
            wait_for(lambda: "keeping the last known routing" in caplog.text, timeout=10, what="the outage log")
        assert cached.snapshot() == known
        assert router.decide("app.jobs.a", cached.snapshot()) == router.FLIPPED
        own_server.start()
        FlagStore(RoutingTables(own_server.url)).unflip("app.jobs.a")
        wait_for(lambda: cached.snapshot().version == known.version + 1, timeout=20, what="recovery")
    finally:
        cached.close()


def test_a_forked_child_keeps_refreshing(store: FlagStore) -> None:
    """RQ's work horses and preforking servers fork after the refresher started: the child must refresh too."""
    cached = CachedFlags(store, refresh_seconds=0.1).start()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe and never returns into pytest
        try:
            os.close(read)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if "app.jobs.forked" in cached.snapshot().flipped:
                    os.write(write, b"1")
                    break
                time.sleep(0.02)
        finally:
            os._exit(0)
    os.close(write)
    try:
        store.flip("app.jobs.forked")
        assert os.read(read, 1) == b"1"
        assert cached.refresh()  # the parent's own connection survived the child
    finally:
        os.waitpid(pid, 0)
        os.close(read)
        cached.close()
