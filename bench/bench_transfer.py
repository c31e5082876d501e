"""`migrator transfer` throughput, RQ -> Postgres: 20,000 queued jobs moved, median of several runs.

    .venv/bin/python bench/bench_transfer.py [--json] [--cpu]

Starts its own durable PostgreSQL (fsync on) and Redis from migrator.localservers, fills RQ through rq's own
enqueue_many, times transfer_pending (claim, insert, clean up: the whole exactly-once protocol), and checks
that every job arrived. Aim (issue 11): at least 20,000 jobs/s. --cpu also prints, per run, the CPU-seconds the move
cost this process (every thread), Redis (its INFO) and Postgres (its processes in /proc): on 2 shared cores the
rate follows their sum.

Environment: BENCH_N [20000] jobs per run, BENCH_REPS [5] runs, BENCH_KEEP=1 keeps the server directory.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from adapters.pg_backend import schema  # noqa: E402
from adapters.pg_backend.backend import PostgresBackend  # noqa: E402
from adapters.rq_backend import RQBackend  # noqa: E402
from migrator.transfer import run as transfer  # noqa: E402
from migrator.transfer.values import Direction  # noqa: E402
from migrator.localservers import LocalPostgres, LocalRedis  # noqa: E402

N = int(os.environ.get("BENCH_N", 20000))
REPS = int(os.environ.get("BENCH_REPS", 5))
AIM = 20000.0


def fill(legacy: RQBackend, n: int) -> None:
    """n queued jobs with a small JSON-able payload, one pipeline per 5,000."""
    q = legacy.queue("default")
    for start in range(0, n, 5000):
        data = [q.prepare_data("bench.jobs.noop", args=(i, f"payload-{i}"), kwargs={"n": i})
                for i in range(start, min(n, start + 5000))]
        with legacy.connection.pipeline() as pipe:
            q.enqueue_many(data, pipeline=pipe)
            pipe.execute()


def one_run(legacy: RQBackend, new: PostgresBackend, url: str, cpu: bool = False) -> float:
    legacy.connection.flushall()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE migrator_jobs, migrator_transfers")
    fill(legacy, N)
    before = cpu_seconds(legacy) if cpu else (0.0, 0.0, 0.0)
    started = time.perf_counter()
    report = transfer.transfer_pending(legacy, new, Direction.TO_POSTGRES)
    elapsed = time.perf_counter() - started
    if report.total_moved != N:
        raise SystemExit(f"moved {report.total_moved} of {N}: {report.refused[:3]}")
    if cpu:
        client, redis, postgres = (b - a for a, b in zip(before, cpu_seconds(legacy)))
        print(f"  {N / elapsed:9,.0f} jobs/s  CPU-s: this process {client:.2f}, Redis {redis:.2f}, "
              f"Postgres {postgres:.2f}, sum {client + redis + postgres:.2f}; wall {elapsed:.2f} s", flush=True)
    return N / elapsed


def cpu_seconds(legacy: RQBackend) -> tuple[float, float, float]:
    """CPU-seconds so far of this process, of Redis, and of every postgres process (Linux /proc; 0 elsewhere)."""
    info = legacy.connection.info("cpu")
    ticks = 0
    for pid in (p for p in os.listdir("/proc") if p.isdigit()) if os.path.isdir("/proc") else ():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if "(postgres)" in stat:
            fields = stat.rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return (time.process_time(), float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
            ticks / os.sysconf("SC_CLK_TCK"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cpu", action="store_true", help="print each run's CPU-seconds per process")
    args = parser.parse_args()
    as_json = args.json
    tmp = Path(tempfile.mkdtemp(prefix="bench-transfer-"))
    pg, rd = LocalPostgres(tmp / "pg").start(), LocalRedis(tmp / "redis").start()
    try:
        schema.migrate(pg.url)
        legacy, new = RQBackend(rd.url), PostgresBackend(pg.url)
        rates = [one_run(legacy, new, pg.url, args.cpu) for _ in range(REPS)]
        new.close()
        legacy.close()
    finally:
        rd.stop()
        pg.stop()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    median = statistics.median(rates)
    result = {"jobs": N, "runs": REPS, "median_jobs_per_s": round(median), "min": round(min(rates)),
              "max": round(max(rates)), "aim": AIM, "meets_aim": median >= AIM}
    if as_json:
        print(json.dumps(result, indent=2))
        return
    print(f"transfer rq -> postgres, {N} jobs x {REPS} runs: median {median:,.0f} jobs/s "
          f"(min {min(rates):,.0f}, max {max(rates):,.0f}); aim {AIM:,.0f}: {'met' if median >= AIM else 'MISSED'}")


if __name__ == "__main__":
    main()
