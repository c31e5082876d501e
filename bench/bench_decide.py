"""The cost of a routing decision: decide() on a cached snapshot, in microseconds (median of several runs).

    python bench/bench_decide.py [--database-url URL]

With a database, also the uncached read a decision would cost without the in-process cache (one connection
and one statement, as flipper's PostgreSQL store does per check), and the ratio between the two.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from migrator.routing.cache import CachedFlags
from migrator import wiring  # noqa: E402
from migrator.config import Settings  # noqa: E402
from migrator.routing.decide import decide  # noqa: E402
from migrator.routing.snapshot import RoutingSnapshot  # noqa: E402

NAMES = [f"app.jobs.module_{i % 7}.job_{i}" for i in range(200)]
FLIPPED = frozenset(NAMES[:20])
CASES = {
    "legacy (nothing set)": RoutingSnapshot(),
    "flipped job": RoutingSnapshot(flipped=FLIPPED),
    "rollout 50%": RoutingSnapshot(flipped=FLIPPED, pinned=frozenset(NAMES[20:30]), percent=50),
    "rollout all": RoutingSnapshot(rollout_all=True),
}


def per_call_us(stmt: str, env: dict[str, object], number: int, repeat: int = 7) -> float:
    runs = timeit.repeat(stmt, globals=env, number=number, repeat=repeat)
    return statistics.median(runs) / number * 1e6


def bench_decide(number: int) -> None:
    url = os.environ.get("DATABASE_URL", "postgresql://127.0.0.1/unused")
    cached = CachedFlags(wiring.flag_store(Settings(database_url=url)))
    cached.snapshot()  # never started: the snapshot lookup costs the same, without touching the network
    for label, snapshot in CASES.items():
        job = NAMES[0] if label == "flipped job" else NAMES[100]
        env = {"decide": decide, "job": job, "snapshot": snapshot, "cached": cached}
        decide_us = per_call_us("decide(job, snapshot)", env, number)
        print(f"decide(), {label:<22} {decide_us:8.3f} us")
    env = {"decide": decide, "job": NAMES[100], "cached": cached}
    total = per_call_us("decide(job, cached.snapshot())", env, number)
    print(f"cached.snapshot() + decide()        {total:8.3f} us")


def bench_uncached(url: str, total_us: float) -> None:
    store = wiring.flag_store(Settings(database_url=url))
    uncached = per_call_us("store.snapshot()", {"store": store}, 20, repeat=5)
    print(f"uncached read of the flag store     {uncached:8.1f} us  ({uncached / total_us:,.0f}x a cached decision)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--number", type=int, default=200_000)
    args = parser.parse_args()
    bench_decide(args.number)
    if args.database_url:
        cached = CachedFlags(wiring.flag_store(Settings(database_url=args.database_url)))
        env = {"decide": decide, "job": NAMES[100], "cached": cached}
        bench_uncached(args.database_url, per_call_us("decide(job, cached.snapshot())", env, args.number))


if __name__ == "__main__":
    main()
