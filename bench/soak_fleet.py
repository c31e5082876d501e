"""The soak's worker processes: RQ's forking workers (a parent and, while a job runs, its work-horse) and migrator
workers (a supervisor and its `--concurrency` children), each started in its own session so that whatever a
SIGKILL orphans (a horse, a supervisor's children) can still be found and stopped at the end."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    sid: int


def processes() -> list[Proc]:
    """Every process on the machine, read from /proc (no psutil needed)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp session ...
        if fields[0] == "Z":
            continue
        out.append(Proc(int(entry.name), int(fields[1]), int(fields[2]), int(fields[3])))
    return out


def children(pid: int) -> list[Proc]:
    return [p for p in processes() if p.ppid == pid]


def alive(pid: int) -> bool:
    return any(p.pid == pid for p in processes())


@dataclass
class Fleet:
    """Named worker processes of both backends, restarted under new names after a kill."""

    env: dict[str, str]
    cwd: Path
    logdir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    sessions: set[int] = field(default_factory=set)
    _serial: int = 0

    def _spawn(self, prefix: str, argv: list[str], side: str) -> str:
        self._serial += 1
        name = f"{prefix}-{self._serial}"
        log = open(self.logdir / f"{name}.log", "ab")
        env = {**self.env, "MIGRATOR_DEMO_SIDE": side}
        proc = subprocess.Popen(argv, cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        self.procs[name] = proc
        self.sessions.add(proc.pid)
        return name

    def start_rq(self) -> str:
        """RQ's default (forking) worker, with the scheduler. RQ runs its maintenance (cleaning abandoned jobs, taking
        over the scheduler of a dead worker) only between two dequeues, and an idle worker waits worker_ttl - 15 s
        (405 s by default) in one: --worker-ttl 30 and --maintenance-interval 10 make a job abandoned by a killed
        worker (RQ's rule: 60 s after its last heartbeat) run again within about 90 s."""
        rq_bin = Path(sys.executable).with_name("rq")
        argv = [str(rq_bin), "worker", "--with-scheduler", "--maintenance-interval", "10", "--worker-ttl", "30", "--url",
                self.env["REDIS_URL"], "--name", f"soak-{os.getpid()}-{self._serial + 1}", "default"]
        return self._spawn("rq", argv, "rq")

    def start_migrator(self, concurrency: int = 2) -> str:
        argv = [sys.executable, "-m", "migrator", "worker", "--queues", "default", "--concurrency", str(concurrency)]
        return self._spawn("pg", argv, "postgres")

    def respawn(self) -> list[str]:
        """Start a new worker for each that exited on its own (as a process manager would): what happened."""
        told = []
        for name, proc in list(self.procs.items()):
            if proc.poll() is None:
                continue
            del self.procs[name]
            started = self.start_rq() if name.startswith("rq") else self.start_migrator()
            told.append(f"{name} (pid {proc.pid}) exited with {proc.returncode}; started {started}")
        return told

    def names(self, prefix: str) -> list[str]:
        return [n for n, p in self.procs.items() if n.startswith(prefix) and p.poll() is None]

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def kill(self, name: str) -> int:
        """SIGKILL the named parent process (its children live on, orphaned, as after an OOM kill)."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return proc.pid

    def terminate_session(self, sid: int) -> None:
        """SIGTERM what is left of a session (a killed supervisor's children), as a process manager does."""
        for p in processes():
            if p.sid == sid:
                _signal(p.pid, signal.SIGTERM)

    def stop_all(self, timeout: float = 40.0) -> None:
        """SIGTERM the workers (each lets its running job finish: RQ's horse, migrator's processes), then what is
        left of their sessions (orphans of a killed parent), then SIGKILL whatever still runs."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sid in self.sessions:
            self.terminate_session(sid)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._left():
            time.sleep(0.2)
        for p in self._left():
            _signal(p.pid, signal.SIGKILL)

    def _left(self) -> list[Proc]:
        return [p for p in processes() if p.sid in self.sessions]


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
