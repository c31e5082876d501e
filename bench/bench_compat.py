"""`compat scan` throughput on RQ payloads (aim >= 20,000 payloads/s), with RQ's own pipelined enqueue rate
measured in the same run as the reference.

    .venv/bin/python bench/bench_compat.py

Starts its own Redis (migrator.localservers). Each run: flush, enqueue BENCH_N payloads with rq's
Queue.enqueue_many in one pipeline per 1,000 (timed: RQ's fastest enqueue path), then scan them all
(timed): read every job hash in pipelined batches, unpickle, resolve and bind to the code, and offer each to
the new backend's refusal() (pure: it encodes, never connects). Prints the median of BENCH_REPS runs.
Environment: BENCH_N [20000], BENCH_REPS [3]. Exit 1 when the aim is missed.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import rq  # noqa: E402
from redis.utils import HIREDIS_AVAILABLE  # noqa: E402

from adapters.pg_backend.backend import PostgresBackend  # noqa: E402
from adapters.rq_backend import RQBackend  # noqa: E402
from migrator.compat.scan import ScanReport, scan_payloads  # noqa: E402
from migrator.localservers import LocalRedis  # noqa: E402

PARSER = "hiredis (C)" if HIREDIS_AVAILABLE else "redis-py's Python parser (pip install hiredis: several times faster)"
N = int(os.environ.get("BENCH_N", 20_000))
REPS = int(os.environ.get("BENCH_REPS", 3))
AIM = 20_000.0  # payloads/s
PIPELINE = 1_000
JOB = "bench.bench_compat.send_email"


def send_email(user_id: int, subject: str, body: str = "", *, cc: list[str] | None = None,
               amount: Decimal | None = None) -> None:
    """The job the payloads call (never run here: the scan only binds to its signature)."""


def call(i: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A mix like an app's: most payloads good, 1 in 50 missing an argument, 1 in 50 with a value (complex) the
    new backend cannot carry, some with a Decimal and a list (which it can)."""
    if i % 50 == 0:
        return (i,), {}
    if i % 50 == 1:
        return (i, "hello", "body"), {"amount": complex(i, 1)}
    if i % 5 == 0:
        return (i, f"subject {i}"), {"cc": ["a@example.com", "b@example.com"], "amount": Decimal("12.50")}
    return (i, f"subject {i}", "a short body " * 4), {}


def enqueue_rq(conn: redis.Redis) -> float:
    """Seconds for rq to enqueue N payloads through Queue.enqueue_many, one pipeline per PIPELINE jobs."""
    q = rq.Queue("default", connection=conn)
    start = time.perf_counter()
    for base in range(0, N, PIPELINE):
        items = []
        for i in range(base, min(N, base + PIPELINE)):
            args, kwargs = call(i)
            items.append(rq.Queue.prepare_data(JOB, args=args, kwargs=kwargs))
        with conn.pipeline() as pipe:
            q.enqueue_many(items, pipeline=pipe)
            pipe.execute()
    return time.perf_counter() - start


def scan(url: str) -> tuple[float, float, ScanReport]:
    """(wall seconds, this process's CPU seconds, report): CPU time shows the client's own cost on a shared machine."""
    backend = RQBackend(url)
    carrier = PostgresBackend("postgresql://unused@127.0.0.1:1/none")  # refusal() only: its pool never opens
    try:
        start, cpu = time.perf_counter(), time.process_time()
        report = scan_payloads([backend], carrier=carrier)
        return time.perf_counter() - start, time.process_time() - cpu, report
    finally:
        backend.close()


def main() -> int:
    enqueue_rates, scan_rates, cpu_rates = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-compat-") as tmp:
        server = LocalRedis(Path(tmp) / "redis").start()
        conn = redis.Redis.from_url(server.url)
        try:
            for rep in range(REPS):
                conn.flushall()
                enqueue_rates.append(N / enqueue_rq(conn))
                took, cpu, report = scan(server.url)
                assert report.seen == N, report.summary()
                scan_rates.append(N / took)
                cpu_rates.append(N / cpu)
                print(f"run {rep + 1}: rq enqueue {enqueue_rates[-1]:,.0f}/s, scan {scan_rates[-1]:,.0f}/s "
                      f"({cpu_rates[-1]:,.0f}/s of scanner CPU); "
                      f"{report.summary()}", file=sys.stderr)
        finally:
            conn.close()
            server.stop()
    scan_median, enqueue_median = statistics.median(scan_rates), statistics.median(enqueue_rates)
    verdict = "ok" if scan_median >= AIM else "MISSED"
    print(f"compat scan of {N:,} RQ payloads: median {scan_median:,.0f} payloads/s "
          f"(min {min(scan_rates):,.0f}, max {max(scan_rates):,.0f}, {REPS} runs)  aim >= {AIM:,.0f}/s {verdict}; "
          f"per second of scanner CPU {statistics.median(cpu_rates):,.0f}")
    print(f"rq enqueue_many (pipelined) of the same payloads: median {enqueue_median:,.0f} jobs/s; "
          f"scan / rq enqueue = {scan_median / enqueue_median:.2f}x   [rq {rq.__version__}, python "
          f"{sys.version.split()[0]}, {os.cpu_count()} cpus, redis parser: {PARSER}]")
    return 0 if scan_median >= AIM else 1


if __name__ == "__main__":
    sys.exit(main())
