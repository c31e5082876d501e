"""The demo's script: local servers, RQ and migrator workers, an app enqueuing from several threads, and the
default playbook (playbooks/rq-to-postgres.toml) run with short soaks, a migrator worker SIGKILLed mid-job along
the way; then the ledger: enqueued, ran on RQ, ran on Postgres, lost, duplicated, failed."""
from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from adapters.base import PENDING_STATES, BackendName, JobBackend, JobSpec, JobState
from migrator import wiring
from migrator.compat import lockfile
from migrator.config import Settings
from migrator.demo import jobs, ledger
from migrator.demo.fleet import Fleet
from migrator.demo.load import Load
from migrator.localservers import LocalPostgres, LocalRedis
from migrator.playbook import plan as plans
from migrator.playbook.context import Context, open_context
from migrator.playbook.gates import GateResult
from migrator.playbook.perform import StepResult
from migrator.playbook.runner import Observer, RunOutcome, Runner
from migrator.playbook.values import Kind, Step
from migrator.queue import Queue
from migrator.routing.router import Router

Say = Callable[[str], None]
PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "rq-to-postgres.toml"
FIRST_JOB = f"{jobs.send_email.__module__}.{jobs.send_email.__qualname__}"
LOAD_THREADS = 3
# Reminders are scheduled up to this far ahead: those still waiting in RQ's schedule when RQ drains are the ones
# the playbook's transfer step moves (jobs due within seconds are left to RQ's own scheduler).
SCHEDULE_WITHIN = 25.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    seconds: float = 20.0  # the soaks' total: split evenly across the playbook's soaks
    rate: float = 120.0  # jobs the app enqueues per second, across its threads
    workdir: Path | None = None  # where the servers keep their files (a temporary folder by default)


@dataclass(frozen=True, slots=True)
class DemoReport:
    tally: ledger.Tally
    failed: int  # jobs that ended failed on either backend
    playbook: RunOutcome

    @property
    def ok(self) -> bool:
        t = self.tally
        return t.lost == 0 and t.duplicated == 0 and t.enqueued > 0 and self.playbook.status == "done"

    def to_json(self) -> dict[str, Any]:
        t = self.tally
        return {"enqueued": t.enqueued, "ran": t.ran, "ran_on": t.ran_on, "lost": t.lost, "duplicated": t.duplicated,
                "failed": self.failed, "lost_keys": t.lost_keys, "duplicated_keys": t.duplicated_keys,
                "playbook": self.playbook.to_json(), "ok": self.ok}


def pending(backend: JobBackend) -> int:
    return sum(c.count for c in backend.counts() if c.state in PENDING_STATES)


def failed(backend: JobBackend) -> int:
    return sum(c.count for c in backend.counts() if c.state is JobState.FAILED)


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


class Narrator(Observer):
    """Tells the playbook's progress as it goes, and SIGKILLs a migrator worker mid-job during the soak that
    follows the 50% rollout (the fault lands while the health gate is watching)."""

    def __init__(self, say: Say, fault: Callable[[], None]) -> None:
        self.say, self.fault = say, fault
        self.faulted: threading.Thread | None = None
        self._percent = 0.0

    def step_started(self, step: Step, resumed: bool) -> None:
        self.say(f"playbook step {step.index}: {step.title}")
        if step.kind is Kind.ROLLOUT:
            self._percent = 100.0 if step.everything else step.percent or 0.0
        if step.kind is Kind.SOAK and self._percent == 50 and self.faulted is None:
            self.faulted = threading.Thread(target=self.fault, name="demo-fault", daemon=True)
            self.faulted.start()

    def step_finished(self, step: Step, result: StepResult) -> None:
        mark = "passed" if result.ok else "FAILED"
        self.say(f"        {mark}: {result.message}")
        for gate in result.gates:
            self.say(f"        {gate.name}: {_values(gate)}")


def _values(gate: GateResult) -> str:
    return ", ".join(f"{k} {v}" for k, v in gate.values.items() if v not in (None, [], {}))


class Demo:
    def __init__(self, options: DemoOptions, say: Say) -> None:
        self.options = options
        self.say = say

    def run(self) -> DemoReport:
        with tempfile.TemporaryDirectory(prefix="migrator-demo-") as tmp:
            root = self.options.workdir or Path(tmp)
            redis_server = LocalRedis(root / "redis").start()
            try:
                pg_server = LocalPostgres(root / "postgres").start()
                try:
                    return self._migrate(redis_server.url, pg_server.url, root)
                finally:
                    pg_server.stop()
            finally:
                redis_server.stop()

    def _migrate(self, redis_url: str, pg_url: str, root: Path) -> DemoReport:
        self.say(f"local servers up: redis {redis_url}, postgres {pg_url}")
        settings = Settings(redis_url=redis_url, database_url=pg_url, job_modules=(jobs.__name__,),
                            flag_cache_seconds=0.5, lock_file=str(root / "migrator.lock.json"))
        wiring.migrate_schema(settings)
        ledger.create(pg_url)
        lockfile.snapshot(settings)  # the team locked its job signatures (`migrator compat snapshot`) beforehand
        (root / "logs").mkdir(exist_ok=True)
        fleet = Fleet(redis_url, pg_url, root / "logs")
        ctx = open_context(settings)
        try:
            self._start_workers(fleet, ctx)
            outcome = self._run_playbook(settings, fleet, ctx, pg_url)
            self.say("waiting for the new backend to run what it holds (reminders run at their scheduled time)")
            wait_until(lambda: pending(ctx.new) == 0, timeout=60)
            self.say(f"jobs recovered from the killed worker and run again elsewhere: {self._recovered(pg_url)}")
            gone = failed(ctx.new) + failed(ctx.legacy)
        finally:
            fleet.stop_all()
            ctx.close()
        return DemoReport(ledger.tally(pg_url), gone, outcome)

    def _start_workers(self, fleet: Fleet, ctx: Context) -> None:
        for name in ("rq-1", "rq-2"):
            fleet.start_rq(name)
        for name in ("pg-1", "pg-2"):
            fleet.start_migrator(name)
        wait_until(lambda: sum(w.alive for w in ctx.legacy.workers()) >= 2
                   and sum(w.alive for w in ctx.new.workers()) >= 2, timeout=60)
        self.say("the new backend runs beside RQ: 2 RQ workers, 2 migrator workers")

    def _run_playbook(self, settings: Settings, fleet: Fleet, ctx: Context, pg_url: str) -> RunOutcome:
        plan = plans.load(PLAYBOOK, {"first_job": FIRST_JOB})
        soaks = sum(1 for s in plan.steps if s.kind is Kind.SOAK) or 1
        plan = plan.with_soak(max(1.0, self.options.seconds / soaks)).with_quiet(1.0)
        router = wiring.router_from_env(Router, settings=settings)
        loads = [Load(Queue("default", router=router), pg_url, rate=self.options.rate / LOAD_THREADS, prefix=f"-t{i}",
                      seed=i, schedule_within=SCHEDULE_WITHIN) for i in range(LOAD_THREADS)]
        for load in loads:
            load.start()
        self.say(f"the app enqueues about {self.options.rate:.0f} jobs/s from {LOAD_THREADS} threads through "
                 f"migrator.Queue ({', '.join(f.__name__ for f in jobs.JOBS)}, and send_reminder for later)")
        self.say(f"running {PLAYBOOK.name}: {len(plan.steps)} steps, soaks of {plan.steps[3].duration:g}s (demo only)")
        narrator = Narrator(self.say, lambda: self._kill_one(fleet, ctx, pg_url))
        try:
            outcome = Runner(plan, ctx, confirm=lambda text: True, observer=narrator, yes=True).run()
        finally:
            for load in loads:
                load.stop()
            if narrator.faulted is not None:
                narrator.faulted.join(60)
            router.close()
        self.say(f"playbook {outcome.status}: {outcome.message}; load stopped after "
                 f"{sum(load.enqueued for load in loads)} jobs")
        fleet.stop("rq-1")
        fleet.stop("rq-2")
        self.say("RQ workers stopped, as the checklist says: the old backend can go")
        return outcome

    @staticmethod
    def _recovered(pg_url: str) -> int:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute("SELECT count(*) FROM migrator_jobs WHERE interrupted > 0").fetchone()
        return int(row[0]) if row else 0

    def _kill_one(self, fleet: Fleet, ctx: Context, pg_url: str) -> None:
        """Start a long job on the new backend and SIGKILL the worker running it, mid-work: the case that matters.
        The other workers find the job's owner dead and run it again; it must run exactly once in the end."""
        key = "build_report-1"
        ctx.new.enqueue(JobSpec(f"{jobs.build_report.__module__}.{jobs.build_report.__qualname__}", (key,),
                                job_id=key))
        with psycopg.connect(pg_url, autocommit=True) as conn:
            ledger.note_enqueued(conn, [(key, BackendName.POSTGRES.value)])
        if not wait_until(lambda: self._running_on(ctx, key) is not None, timeout=30, poll=0.01):
            self.say("        (the report job did not start; nothing killed)")
            return
        worker = self._running_on(ctx, key) or ""
        pid = int(worker.rsplit(":", 1)[1]) if ":" in worker else 0
        name = fleet.name_of(pid)
        if name is None:
            self.say("        (the report job did not start on a worker of ours; nothing killed)")
            return
        fleet.kill(name)
        fleet.start_migrator("pg-3")
        self.say(f"        fault: SIGKILLed migrator worker pid {pid} while it ran {key}; started another")

    @staticmethod
    def _running_on(ctx: Context, job_id: str) -> str | None:
        info = ctx.new.fetch_job(job_id)
        return info.worker if info else None


__all__ = ["Demo", "DemoOptions", "DemoReport"]
