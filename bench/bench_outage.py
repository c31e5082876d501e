"""Enqueue latency through migrator.Queue while a backend is down, with fallback on: the router's circuit breaker
against no breaker at all, and raw RQ enqueue (healthy) as the reference, in one run.

    ./dev demo >/dev/null 2>&1 || true   # once: makes .venv
    .venv/bin/python bench/bench_outage.py [--json]

Starts its own durable PostgreSQL and Redis (migrator.localservers), flips the job to Postgres, stops Postgres
(pg_ctl stop -m immediate: the server is gone, connections are refused), then times BENCH_N enqueues per case:
  healthy RQ    raw rq.Queue.enqueue on a live Redis (what an app pays today)
  breaker       migrator.Queue with fallback = true: after the first failure, jobs go to RQ at once
  no breaker    the same router with its breaker disabled: every enqueue asks the pool first (about 5 s each)
Then the same for a Redis outage (legacy-routed job, Redis stopped, fallback to Postgres). Aim (issue 11):
p99 under 50 ms during an outage with fallback on. Environment: BENCH_N [300], BENCH_SLOW_N [3] (no-breaker
enqueues: each waits out the pool's timeout), BENCH_REPS [3].
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import rq  # noqa: E402

from adapters.pg_backend import schema  # noqa: E402
from adapters.pg_backend.backend import PostgresBackend  # noqa: E402
from adapters.pg_backend.routing_tables import RoutingTables  # noqa: E402
from adapters.rq_backend import RQBackend  # noqa: E402
from bench import jobs  # noqa: E402
from bench.common import say  # noqa: E402
from migrator import Queue  # noqa: E402
from migrator.localservers import LocalPostgres, LocalRedis  # noqa: E402
from migrator.routing.cache import CachedFlags  # noqa: E402
from migrator.routing.flag_store import FlagStore  # noqa: E402
from migrator.routing.router import Router  # noqa: E402

N = int(os.environ.get("BENCH_N", "300"))
SLOW_N = int(os.environ.get("BENCH_SLOW_N", "3"))
REPS = int(os.environ.get("BENCH_REPS", "3"))


def timed(call: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def router_for(redis_url: str, pg_url: str, flags_url: str, breaker: bool) -> Router:
    flags = CachedFlags(FlagStore(RoutingTables(flags_url)), 1.0).start()
    router = Router(RQBackend(redis_url), PostgresBackend(pg_url), flags, fallback=True)
    if not breaker:  # the router as it was: every enqueue tries the chosen backend first
        for b in router.breakers.values():
            b.trip = lambda exc: None  # type: ignore[method-assign]
    return router


def outage_case(name: str, kill: Any, revive: Any, job: Any, redis_url: str, pg_url: str, flags_url: str
                ) -> dict[str, Any]:
    rows: dict[str, list[float]] = {"breaker": [], "no breaker": []}
    for _ in range(REPS):
        kill()
        for label, breaker, n in (("breaker", True, N), ("no breaker", False, SLOW_N)):
            router = router_for(redis_url, pg_url, flags_url, breaker)
            q = Queue("default", router=router)
            try:
                rows[label] += timed(lambda: q.enqueue(job), n)
            finally:
                router.close()
        revive()
    return {label: {"n": len(v), "p50_ms": round(statistics.median(v), 3), "p99_ms": round(pct(v, 0.99), 3),
                    "max_ms": round(max(v), 1)} for label, v in rows.items()} | {"outage": name}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-outage-") as d:
        pg = LocalPostgres(Path(d) / "pg", durable=True).start()
        flags_pg = LocalPostgres(Path(d) / "flags", durable=True).start()  # the flag store stays up throughout
        red = LocalRedis(Path(d) / "redis").start()
        try:
            schema.migrate(pg.url)
            schema.migrate(flags_pg.url)
            FlagStore(RoutingTables(flags_pg.url)).flip("bench.jobs.noop", by="bench")
            client = redis.Redis.from_url(red.url)
            healthy = timed(lambda: rq.Queue("default", connection=client).enqueue("bench.jobs.noop"), N * REPS)
            say("postgres outage...")
            pg_case = outage_case("postgres stopped", lambda: pg.stop("immediate"), pg.start, jobs.noop,
                                  red.url, pg.url, flags_pg.url)
            say("redis outage...")
            red_case = outage_case("redis stopped", red.stop, red.start, jobs.other_noop, red.url, pg.url,
                                   flags_pg.url)
        finally:
            for server in (pg, flags_pg):
                server.stop("immediate")
            red.stop()
    result = {"healthy raw rq": {"n": len(healthy), "p50_ms": round(statistics.median(healthy), 3),
                                 "p99_ms": round(pct(healthy, 0.99), 3)}, "cases": [pg_case, red_case]}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        h = result["healthy raw rq"]
        print(f"healthy raw rq.Queue.enqueue: p50 {h['p50_ms']} ms, p99 {h['p99_ms']} ms (n={h['n']})")
        for case in result["cases"]:
            for label in ("breaker", "no breaker"):
                c = case[label]
                print(f"{case['outage']:17} {label:10}: p50 {c['p50_ms']:9.3f} ms  p99 {c['p99_ms']:9.3f} ms  "
                      f"max {c['max_ms']:8.1f} ms  (n={c['n']})")
            ok = case["breaker"]["p99_ms"] < 50
            print(f"{case['outage']:17} aim p99 < 50 ms with the breaker: {'PASS' if ok else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
