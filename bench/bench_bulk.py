"""Bulk enqueue only: the new backend's enqueue_many against RQ's pipelined enqueue_many and pgqueuer's batch enqueue,
interleaved in one run on one durable Postgres (and one Redis), for the issue's stretch aim (ahead of pgqueuer).

    .venv/bin/python bench/bench_bulk.py [--python /tmp/migrator-peers-venv/bin/python] [--json] [--profile]

pgqueuer runs under `--python` (see bench_peers.py), through bench/peers/side.py, which times its enqueues alone.
Each side enqueues BENCH_N_BULK [20000] no-op jobs in chunks of BENCH_CHUNK [5000] into an empty table, BENCH_REPS
[5] times, in an order rotated per repetition; every figure is the median [min - max]. `--profile` prints a
cProfile of the new backend's bulk enqueue instead.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import bench_backend as bb  # noqa: E402
from bench import bench_peers as bp  # noqa: E402
from bench.common import say, stats  # noqa: E402
from migrator.localservers import LocalPostgres, LocalRedis  # noqa: E402

REPS = int(os.environ.get("BENCH_REPS", 5))
N_BULK = int(os.environ.get("BENCH_N_BULK", 20000))


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(sides: dict[str, Callable[[], float]], resets: dict[str, Callable[[], None]]) -> dict[str, Any]:
    secs: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for rep in range(REPS):
        order = names[rep % len(names):] + names[:rep % len(names)]  # rotate: drift and load spread evenly
        for name in order:
            resets[name]()
            secs[name].append(sides[name]())
        say(f"  rep {rep + 1}: " + ", ".join(f"{n} {N_BULK / secs[n][-1]:,.0f}/s" for n in names)
            + f" (load {os.getloadavg()[0]:.1f})")
    return {name: {**stats([N_BULK / s for s in v]), "seconds": [round(s, 4) for s in v]} for name, v in secs.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", default=os.environ.get("BENCH_PEERS_PYTHON"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="migrator-bench-bulk-"))
    tmp.chmod(0o755)
    (tmp / "logs").mkdir()
    procs = bb.Procs(tmp / "logs")
    pg, rd = LocalPostgres(tmp / "pg", durable=True).start(), LocalRedis(tmp / "redis").start()
    load = os.getloadavg()
    try:
        rqs, pgs = bb.RQSide(rd.url, procs), bb.PGSide(pg.url, procs)
        sides: dict[str, Callable[[], float]] = {"rq": lambda: timed(lambda: rqs.enqueue_bulk(N_BULK)),
                                                 "new": lambda: timed(lambda: pgs.enqueue_bulk(N_BULK))}
        resets: dict[str, Callable[[], None]] = {"rq": rqs.reset, "new": pgs.reset}
        if args.python and "pgqueuer" in bp.installed(args.python):
            peer = bp.Peer("pgqueuer", args.python, pg.url, procs)
            peer.side("install", 0)
            sides["pgqueuer"] = lambda: float(peer.side("bulk", N_BULK))
            resets["pgqueuer"] = peer.reset
        for name in sides:  # warm-up
            resets[name]()
            sides[name]()
        if args.profile:
            pgs.reset()
            prof = cProfile.Profile()
            prof.runcall(pgs.enqueue_bulk, N_BULK)
            pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
            return 0
        res = run(sides, resets)
        pgs.close()
    finally:
        procs.stop_all()
        pg.stop()
        rd.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    info = {"load before": " ".join(f"{x:.2f}" for x in load),
            "load after": " ".join(f"{x:.2f}" for x in os.getloadavg()), "n": N_BULK, "reps": REPS}
    if args.json:
        print(json.dumps({"info": info, "results": res}, indent=2))
    else:
        print(f"bulk enqueue of {N_BULK:,} no-op jobs, {REPS} reps, load {info['load before']} -> {info['load after']}")
        for name, s in res.items():
            print(f"{name:<10} {s['median']:>10,.0f} jobs/s [{s['min']:,.0f} - {s['max']:,.0f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
