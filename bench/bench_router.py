"""migrator.Queue.enqueue (routed by the flags) against raw rq.Queue.enqueue, interleaved in one run, with issue 3's aims.

    .venv/bin/python bench/bench_router.py [--json] [--profile]

Starts its own durable PostgreSQL (stock settings, fsync on) and Redis (no persistence) from
migrator.localservers, measures, prints a table and stops the servers. See bench/README.md.

Measured, one enqueue at a time of the no-op job bench.jobs.noop, interleaved within every repetition
(A, B, C, D, A, B, C, D, ...) so that drift on a noisy machine hits all four alike:
  A  raw   rq.Queue("default", connection=Redis).enqueue(noop)
  B  migrator.Queue("default", router=router).enqueue(noop), routed to RQ (no flags set: legacy by default)
  C  the same, routed to Postgres (the job flipped: FlagStore.flip + router.flags.refresh())
  D  raw   PostgresBackend.enqueue(JobSpec("bench.jobs.noop")), for reference
and the routing decision itself, router.decide("bench.jobs.noop"), with timeit.

Aims (issue 3): B/A <= 1.10 (routing to RQ costs at most 10% over raw RQ); C/A <= 1.00 (routed to Postgres, no
slower than raw RQ). Exit code 1 when an aim is missed.

Environment (defaults in brackets):
  BENCH_REPS [7]          repetitions; the table gives the median and min-max over them
  BENCH_N [3000]          enqueues per measurement
  BENCH_DECIDE_N [200000] router.decide() calls per timeit run (7 runs; the median run is reported)
  BENCH_PG_URL, BENCH_REDIS_URL   use these servers instead of starting local ones (they are flushed!)
  BENCH_KEEP=1            keep the temporary directory (server logs)
--profile: after the table (on stderr): cProfile of N enqueues of A and of B, each layer migrator adds timed alone
(no network), and raw rq.Queue.enqueue on a plain Redis client vs the RQ adapter's client (socket timeouts).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import rq  # noqa: E402
import rq.serializers  # noqa: E402
from redis import Redis  # noqa: E402

from adapters.base import BackendName, JobSpec  # noqa: E402
from adapters.pg_backend import schema  # noqa: E402
from adapters.pg_backend.backend import PostgresBackend  # noqa: E402
from adapters.rq_backend import RQBackend  # noqa: E402
from bench import common  # noqa: E402
from bench.common import say, stats  # noqa: E402
from bench.jobs import noop  # noqa: E402
from migrator import Queue, Router  # noqa: E402
from migrator.routing.cache import CachedFlags
from migrator import wiring  # noqa: E402
from migrator.config import Settings  # noqa: E402
from migrator.localservers import LocalPostgres, LocalRedis  # noqa: E402

REPS = int(os.environ.get("BENCH_REPS", 7))
N = int(os.environ.get("BENCH_N", 3000))
DECIDE_N = int(os.environ.get("BENCH_DECIDE_N", 200_000))
WARMUP = 300
QUEUE = "default"
NOOP = "bench.jobs.noop"

# key -> (title, reference key, aim text, threshold on the ratio key/reference)
ROWS = {
    "A": "raw rq.Queue.enqueue(noop)",
    "B": "migrator.Queue.enqueue(noop) -> RQ (legacy)",
    "C": "migrator.Queue.enqueue(noop) -> Postgres (flipped)",
    "D": "raw PostgresBackend.enqueue(JobSpec) (reference)",
    "E": "migrator.Queue.enqueue(noop) -> Postgres, opt-in async commit",
}
AIMS = {"B": ("B/A <= 1.10", 1.10), "C": ("C/A <= 1.00", 1.00), "E": ("E/A <= 1.00", 1.00)}


class Sides:
    """The four enqueue paths, each resettable to an empty queue between measurements."""

    def __init__(self, pg_url: str, redis_url: str) -> None:
        self.pg_url = pg_url
        self.redis = Redis.from_url(redis_url)
        self.rq_queue = rq.Queue(QUEUE, connection=self.redis)  # A
        self.pg = PostgresBackend(pg_url)  # D
        self.store = wiring.flag_store(Settings(database_url=pg_url))
        self.rqb = RQBackend(redis_url)
        self.router = Router(self.rqb, PostgresBackend(pg_url), CachedFlags(self.store, 1.0).start())
        self.queue = Queue(QUEUE, router=self.router)  # B and C
        # E: the same flags, the new backend with `enqueue_synchronous_commit = false` (opt-in, docs/backend.md)
        self.async_pg = PostgresBackend(pg_url, synchronous_commit=False)
        self.queue_async = Queue(QUEUE, router=Router(self.rqb, self.async_pg, self.router.flags))
        self.admin = psycopg.connect(pg_url, autocommit=True)
        self.spec = JobSpec(NOOP, queue=QUEUE)

    # -- routing state ---------------------------------------------------------------------------------------
    def route_to(self, backend: BackendName) -> None:
        """Flip (Postgres) or unflip (RQ, the default) the job in the store, then refresh this process's cache,
        so the next enqueue is routed there; checked, never assumed."""
        if backend is BackendName.POSTGRES:
            self.store.flip(NOOP, by="bench")
        else:
            self.store.unflip(NOOP, by="bench")
        if not self.router.flags.refresh():
            raise RuntimeError("the flag store could not be read")
        got = self.router.decide(NOOP).backend
        if got is not backend:
            raise RuntimeError(f"{NOOP} routes to {got.value}, expected {backend.value}")

    # -- counts, to check where the jobs went ----------------------------------------------------------------
    def rq_count(self) -> int:
        return int(self.redis.llen(f"rq:queue:{QUEUE}"))

    def pg_count(self) -> int:
        row = self.admin.execute("SELECT count(*) FROM migrator_jobs WHERE func = %s", (NOOP,)).fetchone()
        return int(row[0]) if row else 0

    def reset(self) -> None:
        self.redis.flushdb()
        self.admin.execute("TRUNCATE migrator_jobs")

    # -- the four paths --------------------------------------------------------------------------------------
    def a(self, n: int) -> None:
        enqueue = self.rq_queue.enqueue
        for _ in range(n):
            enqueue(noop)

    def b(self, n: int) -> None:  # B and C: the same call; the flags decide
        enqueue = self.queue.enqueue
        for _ in range(n):
            enqueue(noop)

    def e(self, n: int) -> None:
        enqueue = self.queue_async.enqueue
        for _ in range(n):
            enqueue(noop)

    def d(self, n: int) -> None:
        enqueue, spec = self.pg.enqueue, self.spec
        for _ in range(n):
            enqueue(spec)

    def close(self) -> None:
        self.router.close()
        self.async_pg.close()
        self.pg.close()
        self.admin.close()
        self.redis.close()


def measure(s: Sides) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall seconds and client CPU seconds (time.process_time: this process only, the servers excluded) per
    enqueue of every path, per repetition; each measurement starts on empty queues."""
    plan: list[tuple[str, BackendName, Callable[[int], None], Callable[[], int]]] = [
        ("A", BackendName.RQ, s.a, s.rq_count),
        ("B", BackendName.RQ, s.b, s.rq_count),
        ("C", BackendName.POSTGRES, s.b, s.pg_count),
        ("D", BackendName.POSTGRES, s.d, s.pg_count),
        ("E", BackendName.POSTGRES, s.e, s.pg_count),
    ]
    say(f"warm-up ({WARMUP} enqueues per path)")
    for key, backend, act, _ in plan:
        if key in "BCE":
            s.route_to(backend)
        act(WARMUP)
    secs: dict[str, list[float]] = {k: [] for k, *_ in plan}
    cpu: dict[str, list[float]] = {k: [] for k, *_ in plan}
    for rep in range(REPS):
        for key, backend, act, count in plan:
            if key in "BCE":
                s.route_to(backend)
            s.reset()
            c, t = time.process_time(), time.perf_counter()
            act(N)
            secs[key].append((time.perf_counter() - t) / N)
            cpu[key].append((time.process_time() - c) / N)
            if count() != N:  # every job landed on the backend this row claims
                raise RuntimeError(f"{key}: {count()} jobs on {backend.value}, expected {N}")
        say(f"  rep {rep + 1}/{REPS}: " + ", ".join(f"{k} {v[-1] * 1e6:.1f} us" for k, v in secs.items()))
    s.route_to(BackendName.RQ)
    return secs, cpu


def decision_cost(s: Sides) -> dict[str, dict[str, float]]:
    """router.decide() on this process's cached snapshot, in microseconds per call (median of 7 timeit runs)."""
    out = {}
    for label, backend in (("legacy", BackendName.RQ), ("flipped", BackendName.POSTGRES)):
        s.route_to(backend)
        runs = timeit.repeat(lambda: s.router.decide(NOOP), number=DECIDE_N, repeat=7)
        out[label] = {k: v / DECIDE_N * 1e6 for k, v in stats(runs).items()}
    s.route_to(BackendName.RQ)
    return out


def layers(s: Sides) -> list[tuple[str, float]]:
    """Each layer migrator.Queue.enqueue adds on the way to rq, timed alone (no network), us per call."""
    from adapters.rq_backend import enqueue as rq_opts
    from adapters.rq_backend.connection import reachable
    from adapters.spec import build_spec
    from migrator.job import handle
    from migrator.queue import _split_options

    s.route_to(BackendName.RQ)
    rqb = s.rqb
    spec = build_spec(noop, (), {}, QUEUE)
    placed = rqb.enqueue(spec)

    def ctx() -> None:
        with reachable(rqb.url):
            pass

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("migrator.queue._split_options(kwargs)", lambda: _split_options((), {})),
        ("adapters.spec.build_spec(noop, ...) -> JobSpec", lambda: build_spec(noop, (), {}, QUEUE)),
        ("router.decide(name) (cached snapshot)", lambda: s.router.decide(NOOP)),
        ("flags.record_seen((name,))", lambda: s.router.flags.record_seen((NOOP,))),
        ("RQBackend.queue(name): a new rq.Queue per enqueue", lambda: rqb.queue(QUEUE)),
        ("  of which rq resolve_serializer(serializer)", lambda: rq.serializers.resolve_serializer(rqb.serializer)),
        ("rq_backend.enqueue.options(spec)", lambda: rq_opts.options(spec)),
        ("connection.reachable() context manager", ctx),
        ("router._remember(placed)", lambda: s.router._remember(placed)),
        ("Enqueued(...) + the job handle", lambda: handle(
            s.router, type(placed)(placed.backend, placed.job_id, placed.queue, placed.job_name, placed.native), spec)),
    ]
    number = 20_000
    return [(label, statistics.median(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6)
            for label, fn in cases]


def connection_effect(s: Sides) -> dict[str, float]:
    """Raw rq.Queue.enqueue on a plain Redis client (as A) vs on the RQ adapter's own client (socket timeouts
    set: CPython then polls before every send/recv), interleaved: median us per enqueue."""
    rqb = s.rqb
    paths = {"plain Redis.from_url (A)": s.rq_queue,
             "RQBackend's client (socket_timeout)": rq.Queue(QUEUE, connection=rqb.connection)}
    out: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(REPS):
        for label, q in paths.items():
            s.reset()
            t = time.perf_counter()
            for _ in range(N):
                q.enqueue(noop)
            out[label].append((time.perf_counter() - t) / N * 1e6)
    return {k: statistics.median(v) for k, v in out.items()}


def profile(s: Sides) -> str:
    """cProfile N enqueues of A and of B (routed to RQ): B's functions that A never calls are the overhead;
    then each added layer timed alone, and the effect of the adapter's Redis client settings."""
    s.route_to(BackendName.RQ)
    out = io.StringIO()
    for key, act in (("A raw rq.Queue.enqueue", s.a), ("B migrator.Queue.enqueue -> RQ", s.b)):
        s.reset()
        prof = cProfile.Profile()
        prof.runcall(act, N)
        st = pstats.Stats(prof, stream=out)
        total = st.total_tt  # type: ignore[attr-defined]
        out.write(f"\n=== {key}: {N} enqueues, {total:.3f}s under the profiler ({total / N * 1e6:.1f} us each) ===\n")
        st.sort_stats("tottime").print_stats(25)
        st.sort_stats("cumulative").print_stats(30)
    out.write("\n=== the layers migrator.Queue.enqueue adds, each timed alone (no network) ===\n")
    rows = layers(s)
    for label, us in rows:
        out.write(f"  {label:<52} {us:7.2f} us\n")
    out.write(f"  {'total (the indented line is part of the one above)':<52} "
              f"{sum(us for label, us in rows if not label.startswith('  ')):7.2f} us\n")
    out.write("\n=== raw rq.Queue.enqueue by Redis client settings, interleaved ===\n")
    for label, us in connection_effect(s).items():
        out.write(f"  {label:<52} {us:7.1f} us\n")
    return out.getvalue()


def versions(s: Sides) -> dict[str, str]:
    return common.versions(s.redis, s.admin, ("fsync", "synchronous_commit"))


def results(secs: dict[str, list[float]], cpu: dict[str, list[float]]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    a_median = statistics.median(secs["A"])
    for key, values in secs.items():
        us = [v * 1e6 for v in values]
        r: dict[str, Any] = {"title": ROWS[key], "us_per_enqueue": stats(us),
                             "jobs_per_s": stats([1 / v for v in values]), "n": N,
                             "us_per_rep": [round(u, 2) for u in us],
                             "client_cpu_us_per_enqueue": stats([v * 1e6 for v in cpu[key]])}
        r["ratio_of_medians"] = statistics.median(values) / a_median
        # The verdict goes by the ratio within each rep (same rep = same machine weather), median over reps.
        r["ratio_to_A_per_rep"] = stats([v / a for v, a in zip(values, secs["A"])])
        r["ratio_to_A"] = r["ratio_to_A_per_rep"]["median"]
        if key in AIMS:
            r["aim"], limit = AIMS[key]
            r["pass"] = r["ratio_to_A"] <= limit
        res[key] = r
    return res


def table(res: dict[str, Any], decide: dict[str, dict[str, float]], info: dict[str, str], total_s: float) -> str:
    head = ["", "enqueue path", "us/enqueue median [min-max]", "jobs/s median [min-max]", "client CPU us",
            "ratio of medians", "x raw RQ per rep: median [min-max]", "aim", "verdict"]
    rows = []
    for key, r in res.items():
        u, j, pr = r["us_per_enqueue"], r["jobs_per_s"], r["ratio_to_A_per_rep"]
        rows.append([key, r["title"], f"{u['median']:.1f} [{u['min']:.1f} - {u['max']:.1f}]",
                     f"{j['median']:,.0f} [{j['min']:,.0f} - {j['max']:,.0f}]",
                     f"{r['client_cpu_us_per_enqueue']['median']:.1f}", f"{r['ratio_of_medians']:.3f}",
                     f"{pr['median']:.3f} [{pr['min']:.3f} - {pr['max']:.3f}]" if key != "A" else "",
                     r.get("aim", ""), ("PASS" if r["pass"] else "MISS") if "pass" in r else ""])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [f"migrator bench: migrator.Queue.enqueue routed by the flags vs raw rq {info['rq']} Queue.enqueue, "
           "interleaved in one run",
           "  " + "; ".join(f"{k} {v}" for k, v in info.items()),
           f"  N {N} enqueues of {NOOP} per measurement, {REPS} reps interleaved A,B,C,D; "
           f"median [min-max] over reps; run took {total_s:.0f}s",
           "  client CPU: time.process_time() of this process per enqueue (servers excluded); the verdict "
           "goes by the B/A and C/A ratio within each rep, median over reps",
           "", line(head), line(["-" * w for w in widths]), *map(line, rows), ""]
    for label, d in decide.items():
        out.append(f"router.decide({NOOP!r}), {label:<7}: {d['median']:.3f} us "
                   f"[{d['min']:.3f} - {d['max']:.3f}] per call ({DECIDE_N:,} calls x 7 runs, timeit)")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout (table on stderr)")
    ap.add_argument("--profile", action="store_true", help="also cProfile A and B (printed on stderr)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="migrator-bench-router-"))
    tmp.chmod(0o755)  # Postgres may run as an unprivileged OS user (when we are root); it must reach its dir
    pg = rds = None
    sides = None
    t0 = time.perf_counter()
    try:
        pg_url, redis_url = os.environ.get("BENCH_PG_URL"), os.environ.get("BENCH_REDIS_URL")
        if not pg_url:
            say("starting PostgreSQL (durable: stock settings, fsync on) and Redis ...")
            pg = LocalPostgres(tmp / "pg", durable=True).start()
            pg_url = pg.url
        if not redis_url:
            rds = LocalRedis(tmp / "redis").start()
            redis_url = rds.url
        schema.migrate(pg_url)
        sides = Sides(pg_url, redis_url)
        info = versions(sides)
        if "fsync=on" not in info["postgres durability"]:
            say(f"warning: postgres is not durable ({info['postgres durability']}); figures are not comparable")
        secs, cpu = measure(sides)
        say("routing decision (timeit)")
        decide = decision_cost(sides)
        res = results(secs, cpu)
        text = table(res, decide, info, time.perf_counter() - t0)
        if args.json:
            say(text)
            print(json.dumps({"info": info, "n": N, "reps": REPS, "results": res, "decide_us": decide}, indent=2))
        else:
            print(text, flush=True)
        if args.profile:
            say(profile(sides))
        return 0 if all(r.get("pass", True) for r in res.values()) else 1
    finally:
        if sides is not None:
            sides.close()
        if rds is not None:
            rds.stop()
        if pg is not None:
            pg.stop()
        if os.environ.get("BENCH_KEEP"):
            say(f"kept {tmp} (server logs)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
