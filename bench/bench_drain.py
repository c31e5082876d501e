"""drain-check speed against the issue's aims: the whole-backend verdict on 1,000,000 queued RQ jobs (<= 2 s, from
sizes) and the per-job breakdown of 100,000 pending jobs of mixed job names (<= 10 s), on RQ and on Postgres.

    .venv/bin/python bench/bench_drain.py

Starts its own Redis and PostgreSQL from migrator.localservers. Environment (defaults in brackets):
  BENCH_REPS [5]            timed runs of each check; the median is printed, with min-max
  BENCH_N_VERDICT [1000000] queued RQ jobs for the whole-backend verdict
  BENCH_N_BREAKDOWN [100000] pending jobs for the per-job breakdown
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from rq import Queue  # noqa: E402
from rq.job import Job  # noqa: E402

from adapters.base import JobSpec  # noqa: E402
from adapters.pg_backend import schema  # noqa: E402
from adapters.pg_backend.backend import PostgresBackend  # noqa: E402
from adapters.rq_backend import RQBackend  # noqa: E402
from migrator.drain import check as drain  # noqa: E402
from migrator.drain.values import DrainReport  # noqa: E402
from migrator.localservers import LocalPostgres, LocalRedis  # noqa: E402

REPS = int(os.environ.get("BENCH_REPS", 5))
N_VERDICT = int(os.environ.get("BENCH_N_VERDICT", 1_000_000))
N_BREAKDOWN = int(os.environ.get("BENCH_N_BREAKDOWN", 100_000))
BATCH = 10_000  # jobs per pipeline when filling
NAMES = [f"bench.jobs.job_{i}" for i in range(20)]  # mixed job names (never run: nothing imports them)
QUEUES = ["default", "emails", "reports"]


def fill_rq(conn: redis.Redis, n: int, scheduled_every: int = 0) -> float:
    """n jobs, round robin over QUEUES x NAMES; every `scheduled_every`-th one scheduled an hour ahead.

    One job per (queue, name) is made by rq's own Job.create and its hash (Job.to_dict) cloned under fresh
    ids, pushed with the keys RQ's classes name, one pipeline per batch: rq's enqueue_many builds a Job
    object per job and would take minutes for a million. Returns seconds taken."""
    start = time.perf_counter()
    queues = [Queue(name, connection=conn) for name in QUEUES]
    templates = {(q.name, f): Job.create(f, args=(0,), connection=conn, origin=q.name).to_dict()
                 for q in queues for f in NAMES}
    when = (datetime.now(timezone.utc) + timedelta(hours=1)).timestamp()
    for base in range(0, n, BATCH):
        pushed: dict[str, list[str]] = {q.key: [] for q in queues}
        with conn.pipeline(transaction=False) as pipe:
            for i in range(base, min(n, base + BATCH)):
                q, job_id = queues[i % len(queues)], uuid.uuid4().hex
                mapping = templates[(q.name, NAMES[i % len(NAMES)])]
                if scheduled_every and i % scheduled_every == 0:
                    pipe.hset(Job.key_for(job_id), mapping={**mapping, "status": "scheduled"})
                    pipe.zadd(q.scheduled_job_registry.key, {job_id: when})
                else:
                    pipe.hset(Job.key_for(job_id), mapping={**mapping, "status": "queued"})
                    pushed[q.key].append(job_id)
            for key, ids in pushed.items():
                if ids:
                    pipe.rpush(key, *ids)
            pipe.sadd(Queue.redis_queues_keys, *(q.key for q in queues))
            pipe.execute()
    return time.perf_counter() - start


def timed(check: Callable[[], DrainReport], reps: int) -> tuple[list[float], DrainReport]:
    times, report = [], None
    for _ in range(reps):
        start = time.perf_counter()
        report = check()
        times.append(time.perf_counter() - start)
    assert report is not None
    return times, report


def line(what: str, times: list[float], aim: float, report: DrainReport) -> str:
    med = statistics.median(times)
    pending = sum(report.totals().values())
    rows = len(report.pending)
    verdict = "ok" if med <= aim else "MISSED"
    mode = "per job" if all(side.per_job for side in report.sides) else "sizes"
    return (f"{what:<44} median {med:7.3f}s (min {min(times):.3f}, max {max(times):.3f}, {len(times)} runs)  "
            f"aim <= {aim:g}s {verdict}  [{mode}: {pending} pending in {rows} rows]")


def bench_rq(url: str) -> list[str]:
    conn = redis.Redis.from_url(url)
    rqb = RQBackend(url)
    out = []
    conn.flushall()
    took = fill_rq(conn, N_VERDICT)
    out.append(f"filled {N_VERDICT} queued RQ jobs in {took:.1f}s ({N_VERDICT / took:,.0f} jobs/s)")
    times, report = timed(lambda: drain.check_drain(rqb, None), REPS)
    out.append(line(f"rq whole-backend verdict, {N_VERDICT:,} queued", times, 2.0, report))
    conn.flushall()
    fill_rq(conn, N_BREAKDOWN, scheduled_every=10)
    times, report = timed(lambda: drain.check_drain(rqb, None, per_job=True), REPS)
    out.append(line(f"rq per-job breakdown, {N_BREAKDOWN:,} pending", times, 10.0, report))
    times, report = timed(lambda: drain.check_drain(rqb, None, NAMES[3]), REPS)
    out.append(line(f"rq --job {NAMES[3]}, {N_BREAKDOWN:,} pending", times, 10.0, report))
    conn.flushall()
    rqb.close()
    conn.close()
    return out


def bench_pg(url: str) -> list[str]:
    schema.migrate(url)
    backend = PostgresBackend(url)
    at = datetime.now(timezone.utc) + timedelta(hours=1)
    specs = [JobSpec(NAMES[i % len(NAMES)], (i,), queue=QUEUES[i % len(QUEUES)], run_at=at if i % 10 == 0 else None)
             for i in range(N_BREAKDOWN)]
    backend.enqueue_many(specs)
    times, report = timed(lambda: drain.check_drain(None, backend), REPS)
    backend.close()
    return [line(f"postgres per-job breakdown, {N_BREAKDOWN:,} pending", times, 10.0, report)]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        rds = LocalRedis(Path(tmp) / "redis").start()
        pg = LocalPostgres(Path(tmp) / "pg", durable=False).start()
        try:
            lines = bench_rq(rds.url) + bench_pg(pg.url)
        finally:
            rds.stop()
            pg.stop("immediate")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
