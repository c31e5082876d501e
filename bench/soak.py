"""The chaos soak: steady load through `migrator.Queue` while an operator flips, rolls out and rolls back at random,
SIGKILLs RQ's and migrator's workers (work-horse and parent), crashes Postgres and Redis (both restarted, Redis from
its append-only file) and SIGKILLs transfers mid-move; then rolls out everything, transfers what RQ still holds and
waits until both backends are drained. The ledger says whether it held:

    lost 0              every job the app enqueued ran
    duplicates          only for jobs whose worker was SIGKILLed while they ran (each listed with its cause)
    enqueue errors 0    the app never saw one (fallback = true: the router's circuit breaker)

    .venv/bin/python bench/soak.py                 # 10 minutes of chaos, then the drain (about 12 minutes)
    .venv/bin/python bench/soak.py --seconds 90    # what CI runs (tests/e2e/test_soak.py)
    .venv/bin/python bench/soak.py --json          # the report as JSON on stdout, the timeline on stderr

Starts its own servers (migrator.localservers): a durable PostgreSQL for the new backend, a Redis with an
append-only file fsynced at every write (`appendfsync always`), and a second PostgreSQL that holds the ledger (the
referee: never crashed, so a ledger row is never lost nor doubled by the faults under test). Exit 0 only when the
aims hold; 1 otherwise, with what failed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench import soak_load  # noqa: E402
from bench.soak_chaos import Chaos, Servers  # noqa: E402
from bench.soak_fleet import Fleet  # noqa: E402
from bench.soak_ledger import Verdict, judge  # noqa: E402
from migrator import config, wiring  # noqa: E402
from migrator.demo import jobs, ledger  # noqa: E402
from migrator.localservers import LocalPostgres, LocalRedis  # noqa: E402
from migrator.queue import Queue  # noqa: E402
from migrator.routing import router as routing  # noqa: E402

LOAD_THREADS = 3
TRANSFER_EVERY = 20.0  # seconds between transfers while RQ still holds jobs at the end
STUCK = ("SELECT j.id, j.worker_id, w.pid, j.started_at FROM migrator_jobs j LEFT JOIN migrator_workers w"
         " ON w.id = j.worker_id WHERE j.state = 'running' AND j.started_at < now() - interval '60 seconds' ORDER BY 4")
TOML = f"""job_modules = ["{jobs.__name__}"]
queues = ["default"]
flag_cache_seconds = 0.5
fallback = true
"""


class Soak:
    def __init__(self, args: argparse.Namespace, log: TextIO) -> None:
        self.args, self.log = args, log

    def echo(self, text: str) -> None:
        print(text, file=self.log, flush=True)

    def run(self, root: Path) -> Verdict:
        servers = Servers(LocalPostgres(root / "postgres", durable=True), LocalRedis(root / "redis", persistent=True))
        referee = LocalPostgres(root / "referee", durable=False)
        try:
            for server in (servers.redis, servers.postgres, referee):
                server.start()
            return self._soak(root, servers, referee.url)
        finally:
            servers.postgres.stop("immediate")
            referee.stop("immediate")
            servers.redis.stop()

    def _soak(self, root: Path, servers: Servers, ledger_url: str) -> Verdict:
        (root / "migrator.toml").write_text(TOML)
        (root / "logs").mkdir(exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "REDIS_URL": servers.redis.url,
               "DATABASE_URL": servers.postgres.url, "MIGRATOR_DEMO_LEDGER_URL": ledger_url}
        settings = config.load(cwd=root, env=env)
        wiring.migrate_schema(settings)
        ledger.create(ledger_url)
        fleet = Fleet(env, root, root / "logs")
        flags = wiring.flag_store(settings)
        router = wiring.router_from_env(routing.Router, settings=settings)
        queue = Queue("default", router=router)
        gap = (1.5, 3.0) if self.args.seconds < 300 else (2.0, 6.0)
        chaos = Chaos(servers, fleet, flags, queue, ledger_url, env, root, seed=self.args.seed, echo=self.echo, gap=gap,
                      burst_size=self.args.burst, burst_ahead=(10.0, min(40.0, max(15.0, self.args.seconds / 3))))
        wall_start = time.time() - chaos.now()
        loads: list[soak_load.Load] = []
        try:
            for _ in range(2):
                fleet.start_rq()
                fleet.start_migrator()
            self._wait_for_workers(settings)
            chaos.say("start", f"2 RQ workers (forking), 2 x `migrator worker --concurrency 2`; load "
                               f"{self.args.rate:g} jobs/s from {LOAD_THREADS} threads through migrator.Queue")
            loads = [soak_load.Load(queue, ledger_url, self.args.rate / LOAD_THREADS, f"-t{i}", self.args.seed + i,
                                    schedule_within=15.0) for i in range(LOAD_THREADS)]
            for load in loads:
                load.start()
            chaos.run_for(self.args.seconds)
            for load in loads:
                load.stop()
            chaos.say("load-stopped", f"{sum(x.enqueued for x in loads)} jobs enqueued by the app threads")
            drained = self._finish(chaos, flags)
            stuck = [] if drained else self._stuck(servers.postgres.url)
        finally:
            router.close()
            fleet.stop_all()
        return judge(ledger_url, chaos, loads, drained, wall_start, stuck)

    @staticmethod
    def _stuck(url: str) -> list[str]:
        """Jobs a live worker has held 'running' for over a minute (the soak's jobs take at most 3 s)."""
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(STUCK).fetchall()
        return [f"{job} (worker {worker} pid {pid}, started {started:%H:%M:%S})" for job, worker, pid, started in rows]

    @staticmethod
    def _wait_for_workers(settings: config.Settings, timeout: float = 60) -> None:
        legacy, new = wiring.rq_backend(settings), wiring.postgres_backend(settings)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if sum(w.alive for w in legacy.workers()) >= 2 and sum(w.alive for w in new.workers()) >= 4:
                    return
                time.sleep(0.2)
        finally:
            legacy.close()
            new.close()

    def _finish(self, chaos: Chaos, flags: Any) -> bool:
        """The end of a migration: everything to the new backend, what RQ still holds transferred, both drained."""
        flags.rollout_all(by="soak")
        chaos.say("rollout", "--all (the end of the migration)")
        done = chaos.transfer("rq", "postgres", wait=True)
        chaos.say("transfer", f"rq->postgres --all: exit {done.returncode}")
        deadline = time.monotonic() + self.args.drain_timeout
        next_transfer = time.monotonic() + TRANSFER_EVERY
        drained = False
        while time.monotonic() < deadline:
            for told in chaos.fleet.respawn():
                chaos.say("worker-exited", told)
            report = self._drain_check(chaos)
            drained = bool(report.get("drained"))
            if drained and ledger.tally(chaos.ledger_url).lost == 0:
                chaos.say("drained", "drain-check --backend all: nothing left on either backend; every job ran")
                return True
            if report.get("pending", {}).get("rq") and time.monotonic() >= next_transfer:
                # RQ's scheduler pushes due jobs onto its queue (the transfer leaves those due within 10 s to it):
                # move them too, as the playbook's "transfer, then drain again" does.
                done = chaos.transfer("rq", "postgres", wait=True)
                chaos.say("transfer", f"rq->postgres --all again ({report['pending']['rq']} pending in RQ): "
                                      f"exit {done.returncode}")
                next_transfer = time.monotonic() + TRANSFER_EVERY
            time.sleep(3)
        last = self._drain_check(chaos)
        left = [r for r in last.get("remaining", []) if r.get("pending")]
        warned = [w.get("message") for w in last.get("warnings", [])]
        chaos.say("timeout", f"after {self.args.drain_timeout:g}s: drain-check says "
                             f"{'drained, yet jobs never ran' if drained else json.dumps(left)[:800]}; "
                             f"warnings: {json.dumps(warned)[:800]}")
        return drained

    @staticmethod
    def _drain_check(chaos: Chaos) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "migrator", "drain-check", "--backend", "all", "--json"],
                              cwd=chaos.cwd, env=chaos.cli_env, capture_output=True, text=True, timeout=120)
        try:
            return dict(json.loads(done.stdout))
        except ValueError:
            return {"drained": False, "error": (done.stderr or done.stdout).strip()[-300:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=600.0, help="seconds of load and faults (default 600)")
    parser.add_argument("--rate", type=float, default=30.0, help="jobs the app enqueues per second (default 30)")
    parser.add_argument("--burst", type=int, default=200, help="reminders enqueued before each killed transfer")
    parser.add_argument("--drain-timeout", type=float, default=240.0, help="seconds to wait for both backends "
                        "to drain at the end (RQ retries a job abandoned by a killed worker after 60 s)")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 10_000, help="the faults' random seed")
    parser.add_argument("--workdir", type=Path, help="keep the servers' files and worker logs here")
    parser.add_argument("--json", action="store_true", help="the report as JSON on stdout, the timeline on stderr")
    args = parser.parse_args(argv)
    soak = Soak(args, sys.stderr if args.json else sys.stdout)
    soak.echo(f"chaos soak: {args.seconds:g}s, seed {args.seed}")
    with tempfile.TemporaryDirectory(prefix="migrator-soak-") as tmp:
        root = (args.workdir or Path(tmp)).resolve()
        verdict = soak.run(root)
    if args.json:
        print(json.dumps(verdict.to_json(), indent=2))
    else:
        print(verdict.render())
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
