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

from adapters.base import PENDING_STATES, BackendName, JobBackend
from adapters.pg_backend import schema
from adapters.pg_backend.backend import PostgresBackend
from adapters.rq_backend import RQBackend
from migrator.demo import jobs, ledger
from migrator.demo.fleet import Fleet
from migrator.demo.load import Load
from migrator.flags import CachedFlags, FlagStore
from migrator.localservers import LocalPostgres, LocalRedis
from migrator.queue import Queue
from migrator.router import Router

Say = Callable[[str], None]
ACTOR = "migrator demo"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    seconds: float = 16.0  # how long the load runs
    rate: float = 120.0  # jobs enqueued per second
    workdir: Path | None = None  # where the servers keep their files (a temporary folder by default)


def pending(backend: JobBackend) -> int:
    return sum(c.count for c in backend.counts() if c.state in PENDING_STATES)


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
            ("fault: SIGKILL a migrator worker mid-run, start a new one", lambda: self._kill_one(fleet)),
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

    def _kill_one(self, fleet: Fleet) -> None:
        pid = fleet.kill("pg-1")
        fleet.start_migrator("pg-3")
        self.say(f"       killed worker pid {pid}; its running job is requeued by the others")

    def _finish_rq(self, fleet: Fleet, legacy: RQBackend, new: PostgresBackend) -> None:
        """Let RQ finish what it can run now; what waits in its schedule is transferred, then RQ stops."""
        self.say("step 5: drain RQ: its workers finish what is queued")
        wait_until(lambda: all(c.count == 0 for c in legacy.counts()
                               if c.state in PENDING_STATES and c.state.value not in ("scheduled", "retrying")),
                   timeout=120)
        waiting = pending(legacy)
        self.say(f"        {waiting} jobs wait in RQ's schedule: transfer them to Postgres, keeping their time")
        moved = self._transfer(legacy, new)
        self.say(f"        moved {moved}; RQ holds {pending(legacy)} pending jobs")
        fleet.stop("rq-1")
        fleet.stop("rq-2")
        self.say("step 6: RQ workers stopped: the old backend can go")

    def _transfer(self, legacy: RQBackend, new: PostgresBackend) -> int:
        moved = 0
        for job in list(legacy.iter_pending()):
            if job.spec.job_id and legacy.remove_pending(job.spec.job_id):
                new.enqueue(job.spec)
                moved += 1
        return moved

    @staticmethod
    def _name(fn: Callable[..., object]) -> str:
        return f"{fn.__module__}.{fn.__qualname__}"


__all__ = ["Demo", "DemoOptions", "BackendName"]
