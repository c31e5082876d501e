"""Router presence across real processes: apps enqueuing through migrator.Queue report the routing version they
apply; a flip reaches both; a process that stops reporting, or is SIGKILLed, drops out after the bound; a clean
exit leaves at once; `migrator status` lists them."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from adapters.pg_backend.routing_tables import RoutingTables
from migrator.routing import presence
from migrator.routing.flag_store import FlagStore
from tests.support import ROOT, run_cli, subprocess_env, wait_for

# An app process: one enqueue builds its default router (wiring.router_from_env, flags refreshed every 1 s);
# it then idles until told to exit, and exits cleanly (atexit closes the router).
APP = """
import sys
from migrator import Queue
from tests import jobs
Queue("default").enqueue(jobs.add, 1, 2)
print("ready", flush=True)
sys.stdin.readline()
"""
BOUND = presence.drop_out_after(1.0)  # flag_cache_seconds of the app processes: the default, 1 s
SLACK = 30.0  # generous waits only keep a slow CI green; the bound itself is what live_routers applies


@pytest.fixture
def apps(pg_url: str, redis_url: str) -> Iterator[list[subprocess.Popen[str]]]:
    procs = [subprocess.Popen([sys.executable, "-c", APP], cwd=ROOT, text=True, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=subprocess_env(DATABASE_URL=pg_url, REDIS_URL=redis_url))
             for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)  # a stopped process cannot die of SIGKILL until continued
                proc.kill()
            proc.wait(30)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


def versions(tables: RoutingTables, within: float = BOUND) -> dict[int, int]:
    """pid -> routing version of the live routers."""
    return {r.pid: r.version for r in presence.live_routers(tables, within)}


def test_a_flip_reaches_every_router_and_the_silent_ones_drop_out(pg_url: str,
                                                                  apps: list[subprocess.Popen[str]]) -> None:
    tables = RoutingTables(pg_url)
    a, b = (p.pid for p in apps)
    wait_for(lambda: versions(tables) == {a: 0, b: 0}, timeout=SLACK, what="both apps to report version 0")

    change = FlagStore(tables).flip("tests.jobs.add", by="test")
    wait_for(lambda: versions(tables) == {a: 1, b: 1}, timeout=SLACK, what="both apps to apply version 1")
    assert presence.lagging(presence.live_routers(tables, BOUND), change.after.version) == []

    os.kill(a, signal.SIGSTOP)  # alive but silent: no refresh, no heartbeat
    wait_for(lambda: set(versions(tables)) == {b}, timeout=BOUND + SLACK, what="the stopped app to drop out")
    os.kill(a, signal.SIGCONT)  # heard again at its next refresh
    wait_for(lambda: set(versions(tables)) == {a, b}, timeout=SLACK, what="the continued app to report again")

    os.kill(b, signal.SIGKILL)  # no clean close: its row stays, and stops counting after the bound
    apps[1].wait(30)
    wait_for(lambda: set(versions(tables)) == {a}, timeout=BOUND + SLACK, what="the killed app to drop out")
    assert b in {r.pid for r in tables.routers(3600)}

    assert apps[0].stdin is not None
    apps[0].stdin.write("exit\n")
    apps[0].stdin.flush()
    assert apps[0].wait(30) == 0
    assert a not in {r.pid for r in tables.routers(3600)}  # a clean exit leaves at once, not after the bound


def test_status_lists_the_live_routers(pg_url: str, redis_url: str, apps: list[subprocess.Popen[str]]) -> None:
    tables = RoutingTables(pg_url)
    pids = {p.pid for p in apps}
    wait_for(lambda: set(versions(tables)) == pids, timeout=SLACK, what="both apps to report")
    done = run_cli("status", "--json", DATABASE_URL=pg_url, REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr
    routers = {r["pid"]: r for r in json.loads(done.stdout)["routers"]}
    assert set(routers) == pids
    assert all(r["version"] == 0 and not r["lagging"] for r in routers.values())
    table = run_cli("status", DATABASE_URL=pg_url, REDIS_URL=redis_url, COLUMNS="200")
    assert table.returncode == 0 and "live routers: 2, all on the current version" in table.stdout
