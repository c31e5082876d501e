"""The demo's script: start local servers and workers, put the app's load on, move every job from RQ to Postgres
step by step (flip one job, roll out 50%, a worker SIGKILLed, roll out all, drain, transfer the stragglers),
and count: enqueued, run, lost, duplicated."""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from adapters.base import PENDING_STATES, BackendName, JobBackend, JobSpec
from adapters.pg_backend import schema
from adapters.pg_backend.backend import PostgresBackend
from adapters.rq_backend import RQBackend
from migrator.demo import jobs, ledger
from migrator.drain.check import check_drain
from migrator.drain.wait import wait_until_drained
from migrator.demo.fleet import Fleet
from migrator.demo.load import Load
from migrator.routing.cache import CachedFlags
from migrator.routing.flag_store import FlagStore
from migrator.localservers import LocalPostgres, LocalRedis
from migrator.queue import Queue
from migrator.routing.router import Router
from migrator.transfer.run import transfer_pending
from migrator.transfer.values import Direction

Say = Callable[[str], None]
ACTOR = "migrator demo"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    seconds: float = 16.0  # how long the load runs
    rate: float = 120.0  # jobs enqueued per second
    workdir: Path | None = None  # where the servers keep their files (a temporary folder by default)


def pending(backend: JobBackend) -> int:
    return sum(c.count for c in backend.counts() if c.state in PENDING_STATES)


def running_on(backend: JobBackend, job_id: str) -> str | None:
    info = backend.fetch_job(job_id)
    return info.worker if info else None


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


class Demo:
    def __init__(self, options: DemoOptions, say: Say) -> None:
        self.o = options
        self.say = say

    def run(self) -> ledger.Tally:
        with tempfile.TemporaryDirectory(prefix="migrator-demo-") as tmp:
            root = self.o.workdir or Path(tmp)
            redis_server = LocalRedis(root / "redis").start()
            pg_server = LocalPostgres(root / "postgres").start()
            try:
                return self._migrate(redis_server.url, pg_server.url, root)
            finally:
                redis_server.stop()
                pg_server.stop()

    def _migrate(self, redis_url: str, pg_url: str, root: Path) -> ledger.Tally:
        self.say(f"local servers up: redis {redis_url}, postgres {pg_url}")
        schema.migrate(pg_url)
        ledger.create(pg_url)
        legacy, new, store = RQBackend(redis_url), PostgresBackend(pg_url), FlagStore(pg_url)
        router = Router(legacy, new, CachedFlags(store, 0.5).start())
        fleet = Fleet(redis_url, pg_url, root)
        (root / "logs").mkdir(exist_ok=True)
        fleet.logdir = root / "logs"
        try:
            self._run_timeline(fleet, router, store, legacy, new, pg_url)
        finally:
            fleet.stop_all()
            router.close()
        return ledger.tally(pg_url)

    def _run_timeline(self, fleet: Fleet, router: Router, store: FlagStore, legacy: RQBackend,
                      new: PostgresBackend, pg_url: str) -> None:
        fleet.start_rq("rq-1")
        fleet.start_rq("rq-2")
        fleet.start_migrator("pg-1")
        fleet.start_migrator("pg-2")
        self.say("step 1: the new backend runs beside RQ: 2 RQ workers, 2 migrator workers")
        load = Load(Queue("default", router=router), pg_url, rate=self.o.rate)
        load.start()
        self.say(f"load: the app enqueues about {self.o.rate:.0f} jobs/s through migrator.Queue "
                 f"({', '.join(f.__name__ for f in jobs.JOBS)}, and send_reminder for later)")
        slot = self.o.seconds / 5
        steps: list[tuple[str, Callable[[], object]]] = [
            ("step 2: flip one job: send_email goes to Postgres", lambda: store.flip(self._name(jobs.send_email), by=ACTOR)),
            ("step 3: roll out 50% of job names", lambda: store.rollout_percent(50, by=ACTOR)),
            ("fault: SIGKILL a migrator worker in the middle of a job, start a new one",
             lambda: self._kill_one(fleet, new, pg_url)),
            ("step 4: roll out to every job", lambda: store.rollout_all(by=ACTOR)),
        ]
        for text, action in steps:
            time.sleep(slot)
            self.say(f"{text}   (enqueued so far: {load.enqueued})")
            action()
        time.sleep(slot)
        load.stop()
        self.say(f"load stopped after {load.enqueued} jobs; every new job now goes to Postgres")
        self._finish_rq(fleet, legacy, new)
        self.say("waiting for the new backend to run what it holds (reminders run at their scheduled time)")
        wait_until(lambda: pending(new) == 0, timeout=120)
        self.say(f"jobs recovered from the killed worker and run again elsewhere: {self._recovered(pg_url)}")

    @staticmethod
    def _recovered(pg_url: str) -> int:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute("SELECT count(*) FROM migrator_jobs WHERE interrupted > 0").fetchone()
        return int(row[0]) if row else 0

    def _kill_one(self, fleet: Fleet, new: PostgresBackend, pg_url: str) -> None:
        """Start a long job on the new backend and SIGKILL the worker running it, mid-work: the case that matters.
        The other workers find the job's owner dead and run it again; it must run exactly once in the end."""
        key = "build_report-1"
        new.enqueue(JobSpec(self._name(jobs.build_report), (key,), job_id=key))
        with psycopg.connect(pg_url, autocommit=True) as conn:
            ledger.note_enqueued(conn, [(key, BackendName.POSTGRES.value)])
        wait_until(lambda: running_on(new, key) is not None, timeout=30, poll=0.01)
        worker = running_on(new, key)
        pid = int(worker.rsplit(":", 1)[1]) if worker else 0
        name = fleet.name_of(pid)
        if name is None:
            self.say("       (the report job did not start on a worker of ours; nothing killed)")
            return
        fleet.kill(name)
        fleet.start_migrator("pg-3")
        self.say(f"       killed worker pid {pid} while it ran {key}; the other workers requeue it")

    def _finish_rq(self, fleet: Fleet, legacy: RQBackend, new: PostgresBackend) -> None:
        """Let RQ finish what it can run now; what waits in its schedule is transferred, exactly once; RQ's
        workers stop only when RQ is drained."""
        self.say("step 5: drain RQ: its workers finish what is queued")
        wait_until(lambda: all(c.count == 0 for c in legacy.counts()
                               if c.state in PENDING_STATES and c.state.value not in ("scheduled", "retrying")),
                   timeout=120)
        self.say(f"        {pending(legacy)} jobs wait in RQ's schedule: transfer them to Postgres, keeping their time")
        for _ in range(30):  # jobs due within seconds are left to RQ's scheduler; the next pass finds them gone
            report = transfer_pending(legacy, new, Direction.TO_POSTGRES)
            if report.total_moved:
                self.say(f"        transferred {report.total_moved} (exactly once; refused {len(report.refused)})")
            if wait_until(lambda: pending(legacy) == 0, timeout=3):
                break
        gate = wait_until_drained(lambda: check_drain(legacy, None), timeout=60, quiet_period=2)
        left = sum(r.count for r in gate.report.rows if r.pending)
        self.say(f"        drain-check rq: {'drained' if gate.ok else f'NOT drained, {left} jobs remain'}"
                 f" (quiet for {gate.quiet_for:.1f}s)")
        fleet.stop("rq-1")
        fleet.stop("rq-2")
        self.say("step 6: RQ workers stopped: the old backend can go")

    @staticmethod
    def _name(fn: Callable[..., object]) -> str:
        return f"{fn.__module__}.{fn.__qualname__}"


__all__ = ["Demo", "DemoOptions", "BackendName"]
