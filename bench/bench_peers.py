"""pgqueuer and procrastinate on this machine, measured as bench_backend.py measures the new backend, for the report.

    .venv/bin/python bench/bench_peers.py --python /path/to/venv/bin/python [--json]

The peers are not the project's dependencies: they run under `--python`, an interpreter where they are installed
(`python -m venv V && V/bin/pip install pgqueuer==1.6.0 procrastinate==3.10.0 asyncpg 'psycopg[binary,pool]'`),
through bench/peers/ (their apps, and side.py, the client side). This script starts its own durable Postgres
(migrator.localservers, as the other benches), times nothing itself but the drains, and stops the server.
Measured, no-op jobs: enqueue one at a time and in chunks of 5,000; pre-queued drain with 1 and 2 worker
processes (pgqueuer: async entrypoint, `batch_size` 10, its default; procrastinate: sync task, concurrency 1),
from launch (start-up included) to the poll that sees all done; idle pickup latency.
Environment: BENCH_REPS [3], BENCH_N [5000] single enqueues, BENCH_N_BULK [20000], BENCH_N_PGQ_DRAIN [20000],
BENCH_N_PROC_DRAIN [3000] (procrastinate is slow: rates are compared), BENCH_LAT [20].
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench import bench_backend as bb  # noqa: E402
from bench.common import say, stats  # noqa: E402
from bench.bench_concurrency import wait_until  # noqa: E402
from migrator.localservers import LocalPostgres  # noqa: E402

REPS = int(os.environ.get("BENCH_REPS", 3))
N_SINGLE = int(os.environ.get("BENCH_N", 5000))
N_BULK = int(os.environ.get("BENCH_N_BULK", 20000))
N_DRAIN = {"pgqueuer": int(os.environ.get("BENCH_N_PGQ_DRAIN", 20000)),
           "procrastinate": int(os.environ.get("BENCH_N_PROC_DRAIN", 3000))}
LAT = int(os.environ.get("BENCH_LAT", 20))
PEERS = ROOT / "bench" / "peers"
DONE = {"pgqueuer": "SELECT %(n)s - count(*) FROM pgqueuer",  # pgqueuer deletes a job once done
        "procrastinate": "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"}
RESET = {"pgqueuer": "TRUNCATE pgqueuer, pgqueuer_log RESTART IDENTITY",
         "procrastinate": "TRUNCATE procrastinate_jobs, procrastinate_events RESTART IDENTITY CASCADE"}


class Peer:
    def __init__(self, system: str, python: str, url: str, procs: bb.Procs) -> None:
        self.system, self.python, self.url, self.procs = system, python, url, procs
        self.env = {**os.environ, "BENCH_PG_URL": url, "PYTHONPATH": str(PEERS), "PYTHONUNBUFFERED": "1"}
        self.db = psycopg.connect(url, autocommit=True)

    def side(self, action: str, n: int, folder: str = "") -> Any:
        done = subprocess.run([self.python, str(PEERS / "side.py"), self.system, action, str(n), folder],
                              cwd=PEERS, env=self.env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{self.system} {action} failed: {done.stderr[-1500:]}")
        return json.loads(done.stdout)

    def reset(self) -> None:
        self.db.execute(RESET[self.system])

    def done(self, n: int) -> int:
        row = self.db.execute(DONE[self.system], {"n": n}).fetchone()
        return int(row[0]) if row else 0

    def worker(self, name: str, burst: bool) -> Any:
        if self.system == "pgqueuer":
            cmd = [self.python, "pgq_worker.py", "10", "drain" if burst else "continuous"]
        else:
            cmd = [str(Path(self.python).parent / "procrastinate"), "--app=proc_app.app", "worker", "--concurrency=1"]
            cmd += ["--one-shot"] if burst else []
        log = open(self.procs.logdir / f"{name}.log", "ab")
        p = subprocess.Popen(cmd, env=self.env, cwd=PEERS, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.live.append(p)
        return p


def measure(peer: Peer, tmp: Path, out: dict[str, Any]) -> None:
    """Fills `out` as it goes, so that a failure late keeps what was measured before it."""
    for key, n in (("enqueue_single", N_SINGLE), ("enqueue_bulk", N_BULK)):
        secs = []
        for _ in range(REPS):
            peer.reset()
            secs.append(peer.side("single" if key == "enqueue_single" else "bulk", n))
        out[key] = {**stats([n / s for s in secs]), "n": n}
        say(f"  {peer.system} {key}: {out[key]['median']:,.0f}/s")
    n = N_DRAIN[peer.system]
    for k in (1, 2):
        rates = []
        for rep in range(REPS):
            peer.reset()
            peer.side("bulk", n)
            t0 = time.perf_counter()
            workers = [peer.worker(f"{peer.system}-drain{k}-{rep}-{i}", burst=True) for i in range(k)]
            try:
                t1 = wait_until(lambda: peer.done(n) >= n, 900, f"{peer.system} drain", poll=0.1)
            finally:
                for w in workers:
                    peer.procs.stop(w)
            rates.append(n / (t1 - t0))
        out[f"drain_{k}"] = {**stats(rates), "n": n}
        say(f"  {peer.system} drain x{k}: {out[f'drain_{k}']['median']:,.0f}/s")
    peer.reset()
    idle = peer.worker(f"{peer.system}-idle", burst=False)
    try:
        time.sleep(2.0)  # start-up, then the idle wait
        folder = tmp / f"stamps-{peer.system}"
        folder.mkdir(mode=0o777)
        samples = peer.side("pickup", LAT, str(folder))
    finally:
        peer.procs.stop(idle)
    out["pickup"] = {**stats(samples), "n": len(samples), "p95": statistics.quantiles(samples, n=20)[-1],
                     "samples": [round(x, 3) for x in samples]}


def installed(python: str) -> list[str]:
    probe = "import importlib.util as u, json; print(json.dumps([m for m in ('pgqueuer', 'procrastinate') if u.find_spec(m)]))"
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else []


def versions(python: str, systems: list[str]) -> dict[str, str]:
    names = [*systems, *(["asyncpg"] if "pgqueuer" in systems else []), "psycopg"]
    code = f"import json, importlib.metadata as m; print(json.dumps({{p: m.version(p) for p in {names!r}}}))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", default=os.environ.get("BENCH_PEERS_PYTHON", sys.executable))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    systems = installed(args.python)
    if not systems:
        say(f"neither pgqueuer nor procrastinate imports under {args.python}")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="migrator-bench-peers-"))
    tmp.chmod(0o755)
    (tmp / "logs").mkdir()
    procs = bb.Procs(tmp / "logs")
    pg = LocalPostgres(tmp / "pg", durable=True).start()
    res: dict[str, Any] = {}
    try:
        for system in systems:
            say(system)
            peer = Peer(system, args.python, pg.url, procs)
            res[system] = {}
            try:
                peer.side("install", 0)
                measure(peer, tmp, res[system])
            except (RuntimeError, TimeoutError, psycopg.Error) as exc:
                say(f"{system}: {exc}")
                res[system]["error"] = str(exc).splitlines()[0]
            finally:
                procs.stop_all()
                peer.db.close()
    finally:
        procs.stop_all()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    info = {**versions(args.python, systems), "peers python": args.python}
    if args.json:
        print(json.dumps({"info": info, "reps": REPS, "results": res}, indent=2))
    else:
        for system, r in res.items():
            for key, s in r.items():
                if key == "error":
                    print(f"{system:<14} error: {s}")
                    continue
                print(f"{system:<14} {key:<16} {s['median']:>10,.1f} [{s['min']:,.1f} - {s['max']:,.1f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
