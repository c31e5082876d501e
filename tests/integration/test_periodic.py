"""Periodic jobs on the new backend: each tick enqueued once however many `migrator worker` processes tick (one of
them SIGKILLed and restarted in between), a catch-up after downtime enqueues once, the flags route the ticks; and
rq-scheduler's cron and interval entries move into the schedule exactly once."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from redis import Redis

from adapters.base import BackendName, PeriodicEntry
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.periodic import PgPeriodicStore
from adapters.pg_backend.routing_tables import RoutingTables
from adapters.rq_backend import RQBackend
from migrator.errors import BadInput
from migrator.localservers import free_port
from migrator.periodic import schedule, ticker
from migrator.routing.cache import CachedFlags
from migrator.routing.flag_store import FlagStore
from migrator.routing.router import Router
from tests import rq_api_jobs as jobs
from tests.faults import CuttingRelay
from tests.support import ledger_counts, ledger_sides, run_cli, spawn_cli, spawn_rq_worker, stop_processes, wait_for

TICK = "tests.rq_api_jobs.note_tick"


@pytest.fixture
def store(pg_url):
    s = PgPeriodicStore(pg_url)
    yield s
    s.close()


def ticks(ledger_url: str) -> dict[int, int]:
    """Tick time (unix seconds) -> runs, from the ledger the periodic job writes."""
    return {int(key.rsplit("-", 1)[1]): n for key, n in ledger_counts(ledger_url).items()
            if key.startswith("tick:periodic-every-second-")}


def workers(pg_url: str, redis_url: str, n: int) -> list[subprocess.Popen[bytes]]:
    return [spawn_cli("worker", DATABASE_URL=pg_url, REDIS_URL=redis_url, MIGRATOR_TEST_SIDE="postgres")
            for _ in range(n)]


@pytest.mark.parametrize("route", [BackendName.POSTGRES, BackendName.RQ], ids=lambda r: r.value)
def test_each_tick_once_with_two_workers_a_restart_and_a_catch_up(store, pg_url, redis_url, ledger_url, route):
    if route is BackendName.POSTGRES:
        FlagStore(RoutingTables(pg_url)).flip(TICK, by="test")
    store.save(schedule.validate(PeriodicEntry("every-second", TICK, cron="* * * * * *", source="code")))
    rq_worker = spawn_rq_worker(redis_url, "default", MIGRATOR_TEST_SIDE="rq")
    running = workers(pg_url, redis_url, 2)
    try:
        wait_for(lambda: len(ticks(ledger_url)) >= 3, what="three ticks")
        killed_at = time.time()
        running[0].send_signal(signal.SIGKILL)  # one ticker dies mid-life; the other goes on alone
        running[0].wait(30)
        running[0:1] = workers(pg_url, redis_url, 1)
        seen = len(ticks(ledger_url))
        wait_for(lambda: len(ticks(ledger_url)) >= seen + 3, what="three more ticks")
        stop_processes(running)
        gap_start = time.time()
        time.sleep(4)  # no ticker runs: four ticks are missed
        gap_end = time.time()
        running = workers(pg_url, redis_url, 2)
        wait_for(lambda: max(ticks(ledger_url)) > gap_end + 1, what="ticks after the restart")
    finally:
        stop_processes([*running, rq_worker])
    runs = ticks(ledger_url)
    # No tick ran twice, but for a tick job the SIGKILLed worker was running at that instant: the reaper runs an
    # interrupted job again, as for any job (docs/backend.md), which is not the ticker enqueuing twice.
    assert {at: n for at, n in runs.items() if n != 1 and not (n == 2 and abs(at - killed_at) <= 2)} == {}
    caught_up = [at for at in runs if gap_start + 1 < at < gap_end - 1]
    assert len(caught_up) <= 1  # missed ticks are enqueued once on catch-up, not once each
    sides = {key: side for key, side in ledger_sides(ledger_url).items() if key.startswith("tick:")}
    assert set(sides) == {f"tick:periodic-every-second-{at}" for at in runs}
    assert {side for runs_of_tick in sides.values() for side in runs_of_tick} == {route.value}  # the flags routed them


def test_config_schedules_sync_and_validate(store, pg_url):
    raw = [{"name": "nightly", "job": "tests.jobs.noop", "cron": "0 3 * * *", "queue": "reports"},
           {"name": "often", "job": "tests.jobs.noop", "every": 30, "args": [1]}]
    ticker.sync_config(store, schedule.from_config(raw))
    store.save(schedule.validate(PeriodicEntry("mine", "tests.jobs.noop", every=5, source="code")))
    ticker.sync_config(store, schedule.from_config(raw[1:]))  # nightly dropped from migrator.toml
    assert sorted((e.name, e.source) for e in store.entries()) == [("mine", "code"), ("often", "config")]
    [often] = [e for e in store.entries() if e.name == "often"]
    assert often.args == (1,) and often.every == 30 and often.next_run_at > datetime.now(timezone.utc)
    for bad in ({"name": "x y", "job": "a.b", "every": 1}, {"name": "x", "job": "a.b"},
                {"name": "x", "job": "a.b", "cron": "not cron"}, {"name": "x", "job": "a.b", "every": 0},
                {"name": "x", "job": "a.b", "every": 1, "colour": "red"}):
        with pytest.raises(BadInput):
            schedule.from_config([bad])


def test_a_ticker_started_while_postgres_is_unreachable_syncs_the_config_once_it_is_back(pg_url, redis_url, store):
    """A worker whose Postgres goes away between its start-up ping and the schedules' sync (a flapping server) must
    start anyway: the ticker's thread syncs migrator.toml's schedules on its first turn that reaches Postgres."""
    port = free_port()  # nothing listens here yet: connections are refused, as by a server that is down
    away = PgPeriodicStore(pg_url.replace(f":{urlsplit(pg_url).port}/", f":{port}/"))
    router = Router(RQBackend(redis_url), PostgresBackend(pg_url), CachedFlags(FlagStore(RoutingTables(pg_url)), 0.1).start())
    ticking = ticker.Ticker(away, router, interval=0.1,
                            config=schedule.from_config([{"name": "often", "job": "tests.jobs.noop", "every": 3600}]))
    relay = None
    try:
        ticking.start()
        time.sleep(0.5)  # several turns fail on the refused connection
        assert ticking.is_alive() and store.entries() == []
        relay = CuttingRelay(pg_url, port=port)  # the server is back where the store looks for it
        wait_for(lambda: [e.name for e in store.entries()] == ["often"], timeout=30, what="the config to sync")
    finally:
        ticking.stop()
        router.close()
        away.close()
        if relay:
            relay.close()
    assert not ticking.is_alive()


def test_next_tick_skips_missed_ticks():
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    every = PeriodicEntry("e", "a.b", every=60, next_run_at=start)
    assert schedule.next_tick(every, start + timedelta(seconds=150)) == start + timedelta(seconds=180)
    cron = PeriodicEntry("c", "a.b", cron="*/15 * * * *")
    assert schedule.next_tick(cron, start + timedelta(minutes=46)) == start + timedelta(minutes=60)


def test_rq_scheduler_entries_move_once(store, pg_url, redis_url):
    rq_scheduler = pytest.importorskip("rq_scheduler")  # a test extra: apps that use it have it
    conn = Redis.from_url(redis_url)
    scheduler = rq_scheduler.Scheduler(queue_name="default", connection=conn)
    cron = scheduler.cron("*/5 * * * *", func=jobs.note_tick, repeat=3, queue_name="reports", id="cron-entry")
    every = scheduler.schedule(datetime.now(timezone.utc) + timedelta(minutes=1), jobs.add, args=(1, 2),
                               interval=60, id="interval-entry")
    once = scheduler.enqueue_in(timedelta(hours=1), jobs.add, 3, 4)  # one-shot: not periodic, stays
    urls = {"DATABASE_URL": pg_url, "REDIS_URL": redis_url}
    try:
        dry = run_cli("transfer", "--periodic", "--dry-run", **urls)
        assert dry.returncode == 0, dry.stderr
        assert "would move 2 periodic entries" in dry.stdout and store.entries() == []
        done = run_cli("transfer", "--periodic", "--json", **urls)
        assert done.returncode == 0, done.stderr
        again = run_cli("transfer", "--periodic", **urls)
        assert again.returncode == 0 and "moved 0 periodic entries" in again.stdout
        assert [j.id for j in scheduler.get_jobs()] == [once.id]  # rq-scheduler no longer enqueues them
    finally:
        conn.close()
    moved = {e.name: e for e in store.entries()}
    assert set(moved) == {cron.id, every.id}
    assert (moved["cron-entry"].cron, moved["cron-entry"].queue, moved["cron-entry"].repeats_left) == (
        "*/5 * * * *", "reports", 3)
    assert (moved["interval-entry"].every, moved["interval-entry"].args) == (60, (1, 2))
    assert {e.source for e in moved.values()} == {"rq-scheduler"}


def test_periodic_list(store, pg_url):
    store.save(schedule.validate(PeriodicEntry("often", "tests.jobs.noop", every=30, source="code")))
    shown = run_cli("periodic", "list", "--json", DATABASE_URL=pg_url)
    assert shown.returncode == 0, shown.stderr
    [entry] = json.loads(shown.stdout)
    assert (entry["name"], entry["job"], entry["every"], entry["source"]) == ("often", "tests.jobs.noop", 30, "code")
    assert "every 30s" in run_cli("periodic", "list", DATABASE_URL=pg_url).stdout


def test_schedules_declared_in_code_are_saved_kept_while_unchanged_and_dropped(pg_url, store, monkeypatch, tmp_path):
    """migrator.periodic.code.schedule() at an app's start: the schedule the workers tick, its next run kept when the
    app starts again with the same schedule, moved when the schedule changes; a malformed one is BadInput."""
    from migrator.periodic import code
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.chdir(tmp_path)  # no migrator.toml here: the environment alone says where Postgres is
    first = code.schedule("nightly", "tests.jobs.noop", cron="0 3 * * *", args=[1])
    [stored] = store.entries()
    assert (stored.name, stored.source, stored.cron, stored.args) == ("nightly", "code", "0 3 * * *", (1,))
    code.schedule("nightly", "tests.jobs.noop", cron="0 3 * * *", args=[1])  # the app starts again
    [again] = store.entries()
    assert again.next_run_at == stored.next_run_at and first.job_name == "tests.jobs.noop"
    code.schedule("nightly", "tests.jobs.noop", every=60)  # the schedule changed: so does its next run
    [changed] = store.entries()
    assert changed.every == 60 and changed.cron is None and changed.next_run_at != stored.next_run_at
    with pytest.raises(BadInput):
        code.schedule("nightly", "tests.jobs.noop", every=0)
    assert code.unschedule("nightly") and not code.unschedule("nightly")
    assert store.entries() == []
