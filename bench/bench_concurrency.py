"""Slow jobs across processes (issue 11): `migrator worker --concurrency N` against N RQ workers, same run, same machine.

    .venv/bin/python bench/bench_concurrency.py [--json] [--cases slow_40x05,slow_6x4,mix,noop_2]

Starts its own durable PostgreSQL and Redis (migrator.localservers), as bench_backend.py does, and stops them.
Cases (job bench.jobs.sleep_for(seconds): wall time, no CPU, like a partner call):
  slow_40x05  40 jobs x 0.5 s, 4 processes: ideal 5.0 s; aims: new <= 1.15 x ideal, new <= RQ (forking)
  slow_6x4    6 jobs x 4 s, 6 processes: ideal 4.0 s; aim: new <= 1.15 x ideal ("together in about 4 s")
  mix         100 jobs, 4 processes, shuffled (seed 11): 40 x 0 s, 30 x 10 ms, 20 x 100 ms, 10 x 1 s
              (12.3 s of work: ideal 3.08 s); aim: new <= RQ (forking)
  noop_2      no-op jobs pre-queued, 2 processes started on them (start-up included), as a rate
Slow cases are end-to-end: the workers are started, registered and idle first; the clock runs from the bulk
enqueue to the poll (every 20 ms) that sees every job finished. RQ runs `rq worker` processes (forking, as
deployed: one work horse per job) and, for reference, SimpleWorker; the new backend `migrator worker
--concurrency N`. Systems alternate order every repetition. Exit 1 when an aim is missed.
Environment: BENCH_REPS [3]; BENCH_N_NOOP [20000] (RQ SimpleWorker 4000, forking 1000: rates are compared).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rq import Queue  # noqa: E402
from rq import Worker as RQWorker  # noqa: E402

from adapters.base import JobSpec  # noqa: E402
from bench import bench_backend as bb  # noqa: E402
from bench.common import say, stats  # noqa: E402
from bench.jobs import sleep_for  # noqa: E402
from migrator.localservers import LocalPostgres, LocalRedis  # noqa: E402

REPS = int(os.environ.get("BENCH_REPS", 3))
N_NOOP = int(os.environ.get("BENCH_N_NOOP", 20000))
N_NOOP_RQ = {"rq-simple": 4000, "rq-fork": 1000}
SLOW = "bench.jobs.sleep_for"
MIX = [0.0] * 40 + [0.01] * 30 + [0.1] * 20 + [1.0] * 10
random.Random(11).shuffle(MIX)
# case: (title, durations, processes, ideal seconds)
CASES: dict[str, tuple[str, list[float], int, float]] = {
    "slow_40x05": ("40 jobs x 0.5 s, 4 processes", [0.5] * 40, 4, 5.0),
    "slow_6x4": ("6 jobs x 4 s, 6 processes", [4.0] * 6, 6, 4.0),
    "mix": ("100 mixed jobs (40x0, 30x10ms, 20x100ms, 10x1s), 4 processes", MIX, 4, sum(MIX) / 4),
}
SYSTEMS = ("new", "rq-fork", "rq-simple")


def spawn_workers(system: str, n: int, rqs: bb.RQSide, pgs: bb.PGSide, name: str) -> list[Any]:
    if system == "new":
        cmd = [sys.executable, "-m", "migrator", "--database-url", pgs.url, "worker", "--queues", bb.QUEUE,
               "--concurrency", str(n)]
        return [pgs.procs.spawn(cmd, name)]
    cmd = [str(bb.BIN / "rq"), "worker", "-u", rqs.url, bb.QUEUE]
    if system == "rq-simple":
        cmd[2:2] = ["-w", "rq.worker.SimpleWorker"]
    return [rqs.procs.spawn(cmd, f"{name}-{i}") for i in range(n)]


def registered(system: str, rqs: bb.RQSide, pgs: bb.PGSide) -> int:
    if system == "new":
        return sum(1 for w in pgs.backend.workers() if w.alive)
    return RQWorker.count(queue=rqs.q)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.02) -> float:
    """Poll until true; the perf_counter of the poll that saw it."""
    deadline = time.perf_counter() + timeout
    while True:
        now = time.perf_counter()
        if predicate():
            return now
        if now > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(poll)


def enqueue(system: str, durations: list[float], rqs: bb.RQSide, pgs: bb.PGSide) -> None:
    if system == "new":
        pgs.backend.enqueue_many([JobSpec(SLOW, (d,), queue=bb.QUEUE) for d in durations])
        return
    with rqs.r.pipeline() as pipe:
        rqs.q.enqueue_many([Queue.prepare_data(sleep_for, args=(d,)) for d in durations], pipeline=pipe)
        pipe.execute()


def makespan(system: str, case: str, rqs: bb.RQSide, pgs: bb.PGSide, rep: int) -> float:
    """Idle workers first, then: bulk enqueue -> every job seen finished."""
    _, durations, procs, _ = CASES[case]
    side = pgs if system == "new" else rqs
    side.reset()
    workers = spawn_workers(system, procs, rqs, pgs, f"{system}-{case}-{rep}")
    try:
        wait_until(lambda: registered(system, rqs, pgs) >= procs, 60, f"{procs} {system} workers")
        time.sleep(1.0)  # settle into the idle wait
        t0 = time.perf_counter()
        enqueue(system, durations, rqs, pgs)
        t1 = wait_until(lambda: side.done() >= len(durations), 300, f"{case} on {system}")
        return t1 - t0
    finally:
        for w in workers:
            side.procs.stop(w)


def noop_rate(system: str, rqs: bb.RQSide, pgs: bb.PGSide, rep: int, procs: int = 2) -> tuple[int, float]:
    """Pre-queued no-op jobs, `procs` processes launched on them; (jobs, seconds) from launch to all done."""
    n = N_NOOP if system == "new" else N_NOOP_RQ[system]
    side = pgs if system == "new" else rqs
    side.reset()
    side.enqueue_bulk(n)
    if system == "new":
        pgs.conn.execute("VACUUM ANALYZE migrator_jobs")  # as autovacuum would after a bulk load
    t0 = time.perf_counter()
    workers = spawn_workers(system, procs, rqs, pgs, f"{system}-noop-{rep}")
    try:
        t1 = wait_until(lambda: side.done() >= n, 600, f"no-op drain on {system}", poll=0.05)
    finally:
        for w in workers:
            side.procs.stop(w)
    return n, t1 - t0


def run(rqs: bb.RQSide, pgs: bb.PGSide, cases: list[str]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for case in cases:
        say(case)
        per: dict[str, list[float]] = {s: [] for s in SYSTEMS}
        for rep in range(REPS):
            order = list(SYSTEMS) if rep % 2 == 0 else list(reversed(SYSTEMS))
            for system in order:
                if case == "noop_2":
                    n, secs = noop_rate(system, rqs, pgs, rep)
                    per[system].append(n / secs)
                else:
                    per[system].append(makespan(system, case, rqs, pgs, rep))
                say(f"  {system} rep {rep + 1}: {per[system][-1]:,.2f}")
        if case == "noop_2":
            res[case] = {"title": "no-op drain, 2 processes (start-up included)", "unit": "jobs/s",
                         **{s: {**stats(v), "values": v} for s, v in per.items()}}
        else:
            title, durations, procs, ideal = CASES[case]
            res[case] = {"title": title, "unit": "s", "ideal": ideal, "jobs": len(durations), "processes": procs,
                         **{s: {**stats(v), "values": [round(x, 3) for x in v]} for s, v in per.items()}}
    return res


def verdicts(res: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(case, aim, met) for every aim of issue 11 that was measured; judged on medians."""
    out = []
    if "slow_40x05" in res:
        r = res["slow_40x05"]
        out.append(("slow_40x05", "new <= 1.15 x ideal (5.75 s)", r["new"]["median"] <= 1.15 * r["ideal"]))
        out.append(("slow_40x05", "new <= RQ forking", r["new"]["median"] <= r["rq-fork"]["median"]))
    if "slow_6x4" in res:
        r = res["slow_6x4"]
        out.append(("slow_6x4", "new <= 1.15 x ideal (4.6 s)", r["new"]["median"] <= 1.15 * r["ideal"]))
    if "mix" in res:
        r = res["mix"]
        out.append(("mix", "new <= RQ forking", r["new"]["median"] <= r["rq-fork"]["median"]))
    return out


def table(res: dict[str, Any]) -> str:
    lines = [f"| case | unit | {' | '.join(SYSTEMS)} | ideal |", "|---|---|" + "---|" * len(SYSTEMS) + "---|"]
    for case, r in res.items():
        fmt = (lambda v: f"{v:,.0f}") if r["unit"] == "jobs/s" else (lambda v: f"{v:.2f}")
        cells = [f"{fmt(r[s]['median'])} [{fmt(r[s]['min'])}-{fmt(r[s]['max'])}]" for s in SYSTEMS]
        ideal = f"{r['ideal']:.2f}" if "ideal" in r else ""
        lines.append(f"| {r['title']} | {r['unit']} | {' | '.join(cells)} | {ideal} |")
    lines.append("")
    lines += [f"{case}: {aim}: {'PASS' if ok else 'MISS'}" for case, aim, ok in verdicts(res)]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="JSON on stdout (table on stderr)")
    ap.add_argument("--cases", default=",".join([*CASES, "noop_2"]))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="migrator-bench-conc-"))
    tmp.chmod(0o755)
    (tmp / "logs").mkdir()
    procs = bb.Procs(tmp / "logs")
    pg = rds = pgs = None
    try:
        say("starting PostgreSQL (durable) and Redis ...")
        pg = LocalPostgres(tmp / "pg", durable=True).start()
        rds = LocalRedis(tmp / "redis").start()
        rqs, pgs = bb.RQSide(rds.url, procs), bb.PGSide(pg.url, procs)
        info = {**bb.versions(rqs, pgs), "reps": str(REPS)}
        res = run(rqs, pgs, args.cases.split(","))
        text = table(res)
        if args.json:
            say(text)
            print(json.dumps({"info": info, "results": res,
                              "aims": [{"case": c, "aim": a, "met": ok} for c, a, ok in verdicts(res)]}, indent=2))
        else:
            print(text)
        return 0 if all(ok for _, _, ok in verdicts(res)) else 1
    finally:
        procs.stop_all()
        if pgs is not None:
            pgs.close()
        for server in (rds, pg):
            if server is not None:
                server.stop()
        if os.environ.get("BENCH_KEEP"):
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
