"""The new Postgres backend against RQ 2.x, measured in one run on the same machine, with the issue's aims.

    .venv/bin/python bench/bench_backend.py [--json]

Starts its own durable PostgreSQL (stock settings, fsync on) and Redis (no persistence, as RQ is usually run)
from migrator.localservers, measures, prints a table and stops the servers. See bench/README.md.

Environment (defaults in brackets):
  BENCH_REPS [3]          repetitions of every throughput measurement; the table gives median and min-max
  BENCH_N [5000]          jobs enqueued one at a time
  BENCH_N_BULK [20000]    jobs in the bulk enqueue (the new backend: chunks of BENCH_CHUNK [5000])
  BENCH_N_DRAIN [20000]   jobs drained by one new-backend worker process
  BENCH_N_DRAIN_LONG [100000]  the backlog one new-backend worker process drains in the long drain (start-up,
                          about 0.6 s of imports here, weighs 30% in a 2 s drain of 20,000 and little in this one)
  BENCH_N_RQ_DRAIN [5000] jobs drained by one RQ SimpleWorker (RQ is slow; rates are compared)
  BENCH_BATCH [CLI default] --batch passed to `migrator worker`
  BENCH_LAT [50]          pickup-latency samples (after one warm-up sample)
  BENCH_PG_URL, BENCH_REDIS_URL   use these servers instead of starting local ones (they are flushed!)
  BENCH_KEEP=1            keep the temporary directory (server and worker logs)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402
from rq import Queue  # noqa: E402
from rq import Worker as RQWorker  # noqa: E402
from rq.registry import FinishedJobRegistry  # noqa: E402

from adapters.base import JobSpec  # noqa: E402
from adapters.pg_backend import schema  # noqa: E402
from adapters.pg_backend.backend import PostgresBackend  # noqa: E402
from bench import common  # noqa: E402
from bench.common import say, stats  # noqa: E402
from bench.jobs import noop, stamp  # noqa: E402
from migrator.localservers import LocalPostgres, LocalRedis  # noqa: E402

REPS = int(os.environ.get("BENCH_REPS", 3))
N_SINGLE = int(os.environ.get("BENCH_N", 5000))
N_BULK = int(os.environ.get("BENCH_N_BULK", 20000))
CHUNK = int(os.environ.get("BENCH_CHUNK", 5000))
N_DRAIN = int(os.environ.get("BENCH_N_DRAIN", 20000))
N_DRAIN_LONG = int(os.environ.get("BENCH_N_DRAIN_LONG", 100000))
N_RQ_DRAIN = int(os.environ.get("BENCH_N_RQ_DRAIN", 5000))
BATCH = os.environ.get("BENCH_BATCH")
LAT = int(os.environ.get("BENCH_LAT", 50))
QUEUE = "bench"
NOOP, STAMP = "bench.jobs.noop", "bench.jobs.stamp"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
       "PYTHONUNBUFFERED": "1"}
ENV.pop("DATABASE_URL", None)
ENV.pop("REDIS_URL", None)

# The aims: (row key, what is compared, threshold)
AIMS = {
    "enqueue_single": ("new/RQ >= 1", lambda new, ratio: ratio >= 1.0),
    "enqueue_bulk": ("new >= 50,000/s", lambda new, ratio: new >= 50_000),
    "drain_wall": ("new/RQ >= 15", lambda new, ratio: ratio >= 15.0),
    "pickup": ("new p50 <= 5 ms", lambda new, ratio: new <= 5.0),
}


# -- processes and timing ----------------------------------------------------------------------------------------
class Procs:
    """Exactly the worker processes this script started, stopped by their Popen handle."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.live: list[subprocess.Popen[bytes]] = []

    def spawn(self, cmd: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.logdir / f"{name}.log", "ab")
        p = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.live.append(p)
        return p

    def stop(self, p: subprocess.Popen[bytes], timeout: float = 30) -> None:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.live:
            self.live.remove(p)

    def stop_all(self) -> None:
        for p in list(self.live):
            self.stop(p)


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def drain(launch: Callable[[], subprocess.Popen[bytes]], done: Callable[[], int], n: int, poll: float,
          timeout: float = 900) -> tuple[float, float]:
    """Start a burst worker on a pre-filled queue; wall = launch -> all n seen done (includes start-up);
    steady = from the first poll that shows progress to the end, scaled to n jobs."""
    t0 = time.perf_counter()
    p = launch()
    t_first = c_first = None
    while True:
        c = done()
        now = time.perf_counter()
        if t_first is None and c > 0:
            t_first, c_first = now, c
        if c >= n:
            break
        if now - t0 > timeout:
            raise TimeoutError(f"only {c}/{n} done after {timeout:.0f}s")
        if p.poll() is not None:
            time.sleep(0.5)
            if done() < n:
                raise RuntimeError(f"the worker exited (code {p.returncode}) with {done()}/{n} done; see its log")
        time.sleep(poll)
    t_done = time.perf_counter()
    try:
        p.wait(60)  # a burst worker exits by itself once the queue is empty
    except subprocess.TimeoutExpired:
        raise RuntimeError("the burst worker did not exit after draining its queue") from None
    assert t_first is not None and c_first is not None
    steady = (t_done - t_first) * n / (n - c_first) if c_first < n else t_done - t0
    return t_done - t0, steady


def pickup_latency(enqueue_stamp: Callable[[str], Any], stamps: Path, samples: int, timeout: float = 10) -> list[float]:
    """ms from the client's clock just before enqueue to the worker-side start of the job (both time.time(),
    same machine). One warm-up sample is dropped; a random 0.2-0.4 s pause lets the worker go idle each time."""
    out = []
    for i in range(samples + 1):
        path = stamps / f"s{i}"
        time.sleep(random.uniform(0.2, 0.4))
        t = time.time()
        enqueue_stamp(str(path))
        deadline = time.time() + timeout
        while not path.exists():
            if time.time() > deadline:
                raise TimeoutError("the stamp job never ran: is the idle worker alive? see its log")
            time.sleep(0.0005)
        if i:
            out.append((float(path.read_text()) - t) * 1000)
        path.unlink()
    return out


def rates(n: int, secs: list[float]) -> dict[str, Any]:
    return {**stats([n / s for s in secs]), "n": n, "seconds": [round(s, 4) for s in secs]}


# -- the two systems ---------------------------------------------------------------------------------------------
class RQSide:
    def __init__(self, url: str, procs: Procs) -> None:
        self.url = url
        self.r = redis.Redis.from_url(url)
        self.q = Queue(QUEUE, connection=self.r)
        self.finished = FinishedJobRegistry(QUEUE, connection=self.r)
        self.procs = procs

    def reset(self) -> None:
        self.r.flushdb()

    def enqueue_single(self, n: int) -> None:
        for _ in range(n):
            self.q.enqueue(noop)

    def enqueue_bulk(self, n: int) -> None:
        with self.r.pipeline() as pipe:
            self.q.enqueue_many([Queue.prepare_data(noop) for _ in range(n)], pipeline=pipe)
            pipe.execute()

    def worker(self, burst: bool, name: str) -> subprocess.Popen[bytes]:
        cmd = [str(BIN / "rq"), "worker", "-u", self.url, "-w", "rq.worker.SimpleWorker", QUEUE]
        return self.procs.spawn(cmd + (["--burst"] if burst else []), name)

    def done(self) -> int:
        return self.finished.count

    def wait_idle_worker(self) -> None:
        deadline = time.time() + 30
        while RQWorker.count(queue=self.q) < 1:
            if time.time() > deadline:
                raise TimeoutError("the idle RQ worker did not register")
            time.sleep(0.05)

    def enqueue_stamp(self, path: str) -> None:
        self.q.enqueue(stamp, path)


class PGSide:
    def __init__(self, url: str, procs: Procs) -> None:
        self.url = url
        schema.migrate(url)
        # BENCH_ENQUEUE_SYNC_COMMIT=0 measures the opt-in `enqueue_synchronous_commit = false`
        self.backend = PostgresBackend(url, synchronous_commit=os.environ.get("BENCH_ENQUEUE_SYNC_COMMIT", "1") != "0")
        self.conn = psycopg.connect(url, autocommit=True)
        self.procs = procs

    def reset(self) -> None:
        self.conn.execute("TRUNCATE migrator_jobs")

    def enqueue_single(self, n: int) -> None:
        for _ in range(n):
            self.backend.enqueue(JobSpec(NOOP, queue=QUEUE))

    def enqueue_bulk(self, n: int) -> None:
        for start in range(0, n, CHUNK):
            self.backend.enqueue_many([JobSpec(NOOP, queue=QUEUE) for _ in range(min(CHUNK, n - start))])

    def worker(self, burst: bool, name: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "migrator", "--database-url", self.url, "worker", "--queues", QUEUE]
        cmd += ["--batch", BATCH] if BATCH else []
        return self.procs.spawn(cmd + (["--burst"] if burst else []), name)

    def done(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM migrator_jobs WHERE state = 'finished'").fetchone()
        return int(row[0]) if row else 0

    def queued(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM migrator_jobs WHERE state = 'queued'").fetchone()
        return int(row[0]) if row else 0

    def wait_idle_worker(self) -> None:
        deadline = time.time() + 30
        while not any(w.alive for w in self.backend.workers()):
            if time.time() > deadline:
                raise TimeoutError("the idle migrator worker did not register")
            time.sleep(0.05)

    def enqueue_stamp(self, path: str) -> None:
        self.backend.enqueue(JobSpec(STAMP, args=(path,), queue=QUEUE))

    def close(self) -> None:
        self.conn.close()
        self.backend.close()


# -- the run -----------------------------------------------------------------------------------------------------
def versions(rqs: RQSide, pgs: PGSide) -> dict[str, str]:
    return {
        **common.versions(rqs.r, pgs.conn, ("fsync", "synchronous_commit", "full_page_writes", "shared_buffers")),
        "worker batch": BATCH or "CLI default",
        "enqueue sessions": "synchronous_commit=on (default)" if pgs.backend.db.synchronous_commit
        else "synchronous_commit=off (opt-in enqueue_synchronous_commit = false)",
    }


def run(rqs: RQSide, pgs: PGSide, stamps: Path) -> dict[str, Any]:
    res: dict[str, Any] = {}

    def both(title: str, key: str, n: int, prepare: Callable[[Any], None], act: Callable[[Any], None]) -> None:
        secs: dict[str, list[float]] = {"rq": [], "new": []}
        for rep in range(REPS):
            order = [("rq", rqs), ("new", pgs)] if rep % 2 == 0 else [("new", pgs), ("rq", rqs)]  # cancel drift
            for name, side in order:
                side.reset()
                prepare(side)
                secs[name].append(timed(lambda s=side: act(s)))  # type: ignore[misc]
        res[key] = {"title": title, "unit": "jobs/s", "rq": rates(n, secs["rq"]), "new": rates(n, secs["new"])}
        say(f"  {title}: RQ {res[key]['rq']['median']:,.0f}/s, new {res[key]['new']['median']:,.0f}/s")

    say("warm-up")
    for side in (rqs, pgs):
        side.reset()
        side.enqueue_single(200)
        side.enqueue_bulk(1000)

    say("1. enqueue one at a time")
    both("enqueue one at a time", "enqueue_single", N_SINGLE, lambda s: None, lambda s: s.enqueue_single(N_SINGLE))
    say("2. bulk enqueue")
    both("bulk enqueue", "enqueue_bulk", N_BULK, lambda s: None, lambda s: s.enqueue_bulk(N_BULK))

    say("3. one worker process draining pre-queued no-op jobs (--burst)")
    walls: dict[str, list[float]] = {"rq": [], "new": []}
    steadies: dict[str, list[float]] = {"rq": [], "new": []}
    for rep in range(REPS):
        order = ["rq", "new"] if rep % 2 == 0 else ["new", "rq"]
        for name in order:
            if name == "rq":
                rqs.reset()
                rqs.enqueue_bulk(N_RQ_DRAIN)
                w, s = drain(lambda: rqs.worker(True, f"rq-drain-{rep}"), rqs.done, N_RQ_DRAIN, poll=0.05)
            else:
                pgs.reset()
                pgs.enqueue_bulk(N_DRAIN)
                pgs.conn.execute("VACUUM ANALYZE migrator_jobs")  # as autovacuum would after a bulk load
                w, s = drain(lambda: pgs.worker(True, f"new-drain-{rep}"), pgs.done, N_DRAIN, poll=0.1)
                if pgs.queued():
                    raise RuntimeError("jobs left queued after the burst worker exited")
            walls[name].append(w)
            steadies[name].append(s)
            say(f"  {name} rep {rep + 1}: wall {w:.2f}s, steady {s:.2f}s")
    n_of = {"rq": N_RQ_DRAIN, "new": N_DRAIN}
    res["drain_wall"] = {"title": "drain, 1 worker process, wall incl. start-up", "unit": "jobs/s",
                         **{k: rates(n_of[k], walls[k]) for k in n_of}}
    res["drain_steady"] = {"title": "drain, 1 worker process, steady", "unit": "jobs/s",
                           **{k: rates(n_of[k], steadies[k]) for k in n_of}}

    say(f"3b. one worker process draining a backlog of {N_DRAIN_LONG:,} no-op jobs (new backend only: RQ would take "
        "minutes; its rate is measured above)")
    longs: list[float] = []
    for rep in range(REPS):
        pgs.reset()
        pgs.enqueue_bulk(N_DRAIN_LONG)
        pgs.conn.execute("VACUUM ANALYZE migrator_jobs")
        w, _ = drain(lambda: pgs.worker(True, f"new-long-{rep}"), pgs.done, N_DRAIN_LONG, poll=0.2)
        longs.append(w)
        say(f"  new rep {rep + 1}: wall {w:.2f}s")
    res["drain_long"] = {"title": f"drain of a {N_DRAIN_LONG:,}-job backlog, 1 worker process, wall incl. start-up",
                         "unit": "jobs/s", "new": rates(N_DRAIN_LONG, longs)}

    say(f"4. idle pickup latency ({LAT} samples each, idle non-burst worker)")
    lat: dict[str, dict[str, Any]] = {}
    for name, side in (("rq", rqs), ("new", pgs)):
        side.reset()
        p = side.worker(False, f"{name}-idle")
        try:
            side.wait_idle_worker()
            time.sleep(1.0)  # let it finish start-up and settle into its wait
            d = stamps / name
            d.mkdir(exist_ok=True)
            samples = pickup_latency(side.enqueue_stamp, d, LAT)
        finally:
            side.procs.stop(p)
        q = statistics.quantiles(samples, n=10)
        lat[name] = {**stats(samples), "n": len(samples), "p90": q[-1], "samples": [round(x, 3) for x in samples]}
        say(f"  {name}: p50 {lat[name]['median']:.2f} ms, p90 {lat[name]['p90']:.2f} ms")
    res["pickup"] = {"title": "idle pickup latency, enqueue -> start (p50)", "unit": "ms", **lat}
    return res


def table(res: dict[str, Any], info: dict[str, str], total_s: float) -> str:
    def fmt(v: float, unit: str) -> str:
        return f"{v:,.2f}" if unit == "ms" else f"{v:,.0f}"

    head = ["measurement", "n (RQ / new)", "RQ 2.x median [min-max]", "new median [min-max]", "unit", "new/RQ",
            "aim", "verdict"]
    rows = []
    for key, r in res.items():
        unit = r["unit"]
        cell = {k: f"{fmt(r[k]['median'], unit)} [{fmt(r[k]['min'], unit)} - {fmt(r[k]['max'], unit)}]"
                if k in r else "-" for k in ("rq", "new")}
        if "rq" not in r:  # measured on the new backend only
            rows.append([r["title"], f"- / {r['new']['n']}", cell["rq"], cell["new"], unit, "-", "", ""])
            continue
        ratio = r["new"]["median"] / r["rq"]["median"]
        r["ratio"] = ratio
        aim, verdict = "", ""
        if key in AIMS:
            aim = AIMS[key][0]
            r["aim"] = aim
            r["pass"] = AIMS[key][1](r["new"]["median"], ratio)
            verdict = "PASS" if r["pass"] else "MISS"
        rows.append([r["title"], f"{r['rq']['n']} / {r['new']['n']}", cell["rq"], cell["new"], unit,
                     f"{ratio:.2f}x", aim, verdict])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [f"migrator bench: new Postgres backend vs RQ {info['rq']} SimpleWorker, one run, same machine",
           "  " + "; ".join(f"{k} {v}" for k, v in info.items()),
           f"  reps {REPS} (median [min-max] over reps; pickup: over {LAT} samples), run took {total_s:.0f}s",
           "", line(head), line(["-" * w for w in widths]), *map(line, rows)]
    out.append("")
    lat = res["pickup"]
    out.append(f"pickup p90: RQ {lat['rq']['p90']:.2f} ms, new {lat['new']['p90']:.2f} ms. "
               "Drain ratios compare rates (RQ drains fewer jobs because it is slow); "
               "the drain aims are judged on wall rate, start-up included.")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout (table on stderr)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="migrator-bench-"))
    tmp.chmod(0o755)  # Postgres may run as an unprivileged OS user (when we are root); it must reach its dir
    logs = tmp / "logs"
    logs.mkdir()
    stamps = tmp / "stamps"
    stamps.mkdir(mode=0o777)
    procs = Procs(logs)
    pg = rds = None
    pgs = None
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
        rqs = RQSide(redis_url, procs)
        pgs = PGSide(pg_url, procs)
        info = versions(rqs, pgs)
        if "fsync=on" not in info["postgres durability"]:
            say(f"warning: postgres is not durable ({info['postgres durability']}); figures are not comparable")
        res = run(rqs, pgs, stamps)
        text = table(res, info, time.perf_counter() - t0)
        if args.json:
            say(text)
            print(json.dumps({"info": info, "reps": REPS, "results": res}, indent=2))
        else:
            print(text)
        return 0 if all(r.get("pass", True) for r in res.values()) else 1
    finally:
        procs.stop_all()
        if pgs is not None:
            pgs.close()
        if rds is not None:
            rds.stop()
        if pg is not None:
            pg.stop()
        if os.environ.get("BENCH_KEEP"):
            say(f"kept {tmp} (server and worker logs)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
