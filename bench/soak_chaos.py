"""The soak's operator: one fault at a time, at random moments, with a timeline of what was done. Routing changes
(flip, pin, unflip, rollout, rollback) through the flag store; SIGKILLs of RQ's work-horse and parent and of
migrator's worker processes and supervisor; Postgres crashed (immediate stop) and restarted; Redis SIGKILLed and
restarted from its append-only file; a transfer SIGKILLed mid-move in either direction, then run again."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
import rq

from adapters.base import JobSpec
from adapters.pg_backend.backend import PostgresBackend
from adapters.rq_backend.holding import HOLDING
from bench import soak_load
from bench.soak_fleet import Fleet, children
from migrator.demo import jobs, ledger
from migrator.localservers import LocalPostgres, LocalRedis
from migrator.queue import Queue
from migrator.routing.flag_store import FlagStore

JOB_NAMES = [soak_load.job_name(f) for f in (*jobs.JOBS, jobs.build_report)]
REMINDER = soak_load.job_name(jobs.send_reminder)
RUNNING_PIDS = ("SELECT w.pid FROM migrator_jobs j JOIN migrator_workers w ON w.id = j.worker_id"
                " WHERE j.state = 'running'")
ROUTING = ["flip", "pin", "unflip", "rollout", "rollout-all", "rollback"]
HELD_TO_RQ = "SELECT count(*) FROM migrator_transfers WHERE direction = 'to_rq'"


@dataclass(frozen=True, slots=True)
class Event:
    at: float  # seconds since the soak began
    kind: str
    what: str


@dataclass
class Servers:
    postgres: LocalPostgres
    redis: LocalRedis


@dataclass
class Chaos:
    servers: Servers
    fleet: Fleet
    flags: FlagStore
    queue: Queue  # the app's queue, for the bursts a transfer moves
    ledger_url: str
    cli_env: dict[str, str]
    cwd: Path
    seed: int = 1
    echo: Callable[[str], None] = print
    gap: tuple[float, float] = (2.0, 5.0)  # seconds between two faults
    burst_size: int = 400
    burst_ahead: tuple[float, float] = (20.0, 40.0)
    t0: float = field(default_factory=time.monotonic)
    timeline: list[Event] = field(default_factory=list)
    killed: dict[int, float] = field(default_factory=dict)  # pid SIGKILLed -> when: a job it ran may run twice
    outages: list[tuple[str, float, float]] = field(default_factory=list)  # (server, from, to), soak seconds
    enqueue_errors: list[str] = field(default_factory=list)
    _halt: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 (a reproducible schedule, not a secret)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def say(self, kind: str, what: str) -> None:
        event = Event(self.now(), kind, what)
        self.timeline.append(event)
        self.echo(f"  t+{event.at:6.1f}s  {kind:<18} {what}")

    # -- the schedule ---------------------------------------------------------------------------------------
    def faults(self) -> dict[str, Callable[[], None]]:
        return {"flip": self.flip, "pin": self.pin, "unflip": self.unflip, "rollout": self.rollout,
                "rollout-all": self.rollout_all, "rollback": self.rollback,
                "kill-rq-horse": self.kill_rq_horse, "kill-rq-parent": self.kill_rq_parent,
                "kill-pg-process": self.kill_pg_process, "kill-pg-supervisor": self.kill_pg_supervisor,
                "crash-postgres": self.crash_postgres, "restart-redis": self.restart_redis,
                "kill-transfer-to-pg": lambda: self.kill_transfer("rq", "postgres"),
                "kill-transfer-to-rq": lambda: self.kill_transfer("postgres", "rq")}

    def run_for(self, seconds: float) -> None:
        """Every fault that kills or crashes something once, in a random order, each followed by a random routing
        change; then random ones of either kind, until `seconds` have passed."""
        rng = self.rng
        menu = self.faults()
        order: list[str] = []
        heavy = [kind for kind in menu if kind not in ROUTING]
        rng.shuffle(heavy)
        for kind in heavy:
            order += [kind, rng.choice(ROUTING)]
        deadline = self.t0 + seconds
        while time.monotonic() < deadline and not self._halt.is_set():
            kind = order.pop(0) if order else rng.choice(list(menu))
            try:
                menu[kind]()
            except Exception as exc:  # the operator's command failed (a server just restarted): noted, go on
                self.say("operator-error", f"{kind}: {type(exc).__name__}: {str(exc)[:200]}")
            for told in self.fleet.respawn():
                self.say("worker-exited", told)
            self._halt.wait(rng.uniform(*self.gap))
        left = [kind for kind in order if kind not in ROUTING]
        if left:
            self.say("note", f"time ran out before: {', '.join(left)}")

    def halt(self) -> None:
        self._halt.set()

    # -- routing --------------------------------------------------------------------------------------------
    def _pick(self) -> str:
        return self.rng.choice(JOB_NAMES)

    def flip(self) -> None:
        job = self._pick()
        self.flags.flip(job, by="soak")
        self.say("flip", job)

    def pin(self) -> None:
        job = self._pick()
        self.flags.pin(job, by="soak")
        self.say("flip --back", job)

    def unflip(self) -> None:
        job = self._pick()
        self.flags.unflip(job, by="soak")
        self.say("unflip", job)

    def rollout(self) -> None:
        percent = self.rng.choice([10, 25, 50, 75])
        self.flags.rollout_percent(percent, by="soak")
        self.say("rollout", f"{percent}%")

    def rollout_all(self) -> None:
        self.flags.rollout_all(by="soak")
        self.say("rollout", "--all")

    def rollback(self) -> None:
        self.flags.rollback(by="soak")
        self.say("rollback", "everything to RQ")

    # -- killing workers ------------------------------------------------------------------------------------
    def _long_job(self, backend: str) -> str:
        """A 3-second job on `backend` (bypassing the routing, so that a worker of that side is surely busy when the
        kill comes), noted in the ledger like the app's jobs."""
        key = f"long-{backend}-{len(self.timeline)}"
        if backend == "rq":
            client = redis.Redis.from_url(self.cli_env["REDIS_URL"])
            try:
                rq.Queue("default", connection=client).enqueue(jobs.build_report, key, job_id=key,
                                                               retry=soak_load.RETRY)
            finally:
                client.close()
        else:
            new = PostgresBackend(self.cli_env["DATABASE_URL"])
            try:
                new.enqueue(JobSpec(soak_load.job_name(jobs.build_report), (key,), job_id=key))
            finally:
                new.close()
        with psycopg.connect(self.ledger_url, autocommit=True) as conn:
            ledger.note_enqueued(conn, [(key, backend)])
        return key

    def kill_rq_horse(self) -> None:
        """SIGKILL the work-horse of an RQ worker while it runs a job (RQ's parent sees it die and retries)."""
        self._long_job("rq")
        horse = self._wait_for(self._rq_horse, 5)
        if horse is None:
            self.say("kill-rq-horse", "no job running on RQ within 5 s: nothing killed")
            return
        self._sigkill(horse)
        self.say("kill-rq-horse", f"SIGKILLed work-horse {horse} mid-job")

    def _rq_horse(self) -> int | None:
        for name in self.fleet.names("rq"):
            for child in children(self.fleet.pid(name)):
                if child.pgid == child.pid:  # the horse calls setpgrp(); the scheduler process does not
                    return child.pid
        return None

    def kill_rq_parent(self) -> None:
        names = self.fleet.names("rq")
        name = self.rng.choice(names)
        busy = bool([c for c in children(self.fleet.pid(name)) if c.pgid == c.pid])
        pid = self.fleet.kill(name)
        self.killed[pid] = self.now()
        started = self.fleet.start_rq()
        self.say("kill-rq-parent", f"SIGKILLed RQ worker {pid} ({'its horse mid-job lives on' if busy else 'idle'});"
                                   f" started {started}")

    def kill_pg_process(self) -> None:
        """SIGKILL the migrator worker process running a job (its supervisor starts another; the reaper requeues)."""
        self._long_job("postgres")
        ours = {c.pid for name in self.fleet.names("pg") for c in children(self.fleet.pid(name))}
        pid = self._wait_for(lambda: self._running_pg_pid(ours), 5, interval=0.05)
        what = "mid-job"
        if pid is None:
            pid, what = (self.rng.choice(sorted(ours)) if ours else None), "idle"
        if pid is None:
            self.say("kill-pg-process", "no worker process found: nothing killed")
            return
        self._sigkill(pid)
        self.say("kill-pg-process", f"SIGKILLed migrator worker process {pid} ({what})")

    def _running_pg_pid(self, ours: set[int]) -> int | None:
        with psycopg.connect(self.servers.postgres.url, autocommit=True, connect_timeout=2) as conn:
            pids = [r[0] for r in conn.execute(RUNNING_PIDS).fetchall() if r[0] in ours]
        return self.rng.choice(pids) if pids else None

    def kill_pg_supervisor(self) -> None:
        """SIGKILL `migrator worker --concurrency 2` itself; start another; the orphaned worker processes stop by
        themselves (the death signal the supervisor set: no new jobs, the running one finishes)."""
        name = self.rng.choice(self.fleet.names("pg"))
        sid = self.fleet.pid(name)
        orphans = [c.pid for c in children(sid)]
        pid = self.fleet.kill(name)
        self.killed[pid] = self.now()
        started = self.fleet.start_migrator()
        self.say("kill-pg-supervisor", f"SIGKILLed supervisor {pid}; its orphans {orphans} stop by themselves; "
                                       f"started {started}")

    def _sigkill(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.killed[pid] = self.now()

    # -- servers --------------------------------------------------------------------------------------------
    def crash_postgres(self) -> None:
        down = self.rng.uniform(1.0, 2.0)  # with recovery (2-3 s here), within the workers' recovery grace (5 s)
        began = self.now()
        self.servers.postgres.stop("immediate")
        self.say("crash-postgres", f"pg_ctl stop -m immediate; down for {down:.1f}s")
        time.sleep(down)
        self.servers.postgres.start()
        self.outages.append(("postgres", began, self.now()))
        self.say("restart-postgres", "recovered from its WAL, accepting connections")

    def restart_redis(self) -> None:
        down = self.rng.uniform(1, 4)
        began = self.now()
        self.servers.redis.crash()
        self.say("crash-redis", f"SIGKILL (appendonly, appendfsync always); down for {down:.1f}s")
        time.sleep(down)
        self.servers.redis.start()
        self.outages.append(("redis", began, self.now()))
        self.say("restart-redis", "reloaded its append-only file")

    # -- a transfer killed mid-move -------------------------------------------------------------------------
    def kill_transfer(self, source: str, target: str) -> None:
        """Route reminders to `source`, enqueue a burst of them scheduled well ahead, start `migrator transfer
        --all` and SIGKILL it once jobs are held in transit; then run it again to completion."""
        (self.flags.pin if source == "rq" else self.flags.flip)(REMINDER, by="soak")
        time.sleep(1.5)  # the app's flag cache (0.5 s) has the change
        n, errors = soak_load.burst(self.queue, self.ledger_url, self.burst_size, f"-{len(self.timeline)}",
                                    self.burst_ahead)
        self.enqueue_errors.extend(errors)
        proc = self.transfer(source, target)
        held = self._held_when_killed(proc, source)
        when = f"with {held} jobs held in transit" if held else "after it had finished (too quick to catch)"
        self.say("kill-transfer", f"{source}->{target}: {n} reminders enqueued, transfer SIGKILLed {when}")
        again = self.transfer(source, target, wait=True)
        self.say("transfer", f"{source}->{target} run again: exit {again.returncode}")
        self.flags.unflip(REMINDER, by="soak")

    def transfer(self, source: str, target: str, wait: bool = False) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "migrator", "transfer", "--all", "--from", source, "--to", target, "--json"]
        with open(self.fleet.logdir / f"transfer-{len(self.timeline)}-{source}-{target}.log", "ab") as log:
            proc = subprocess.Popen(argv, cwd=self.cwd, env=self.cli_env, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            proc.wait(300)
        return proc

    def _held_when_killed(self, proc: subprocess.Popen[bytes], source: str) -> int:
        """Watch the source's transit bookkeeping every 2 ms; SIGKILL the transfer as soon as it holds jobs (or
        once it has ended). Returns how many jobs were held at the kill."""
        client = redis.Redis.from_url(self.cli_env["REDIS_URL"])
        conn = psycopg.connect(self.servers.postgres.url, autocommit=True)
        held, deadline = 0, time.monotonic() + 120
        try:
            while not held and proc.poll() is None and time.monotonic() < deadline:
                if source == "rq":
                    held = int(client.hlen(HOLDING))
                else:
                    row = conn.execute(HELD_TO_RQ).fetchone()
                    held = int(row[0]) if row else 0
                if not held:
                    time.sleep(0.002)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            client.close()
            conn.close()
        return held

    @staticmethod
    def _wait_for(find: Callable[[], Any], timeout: float, interval: float = 0.01) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = find()
            if found:
                return found
            time.sleep(interval)
        return None
