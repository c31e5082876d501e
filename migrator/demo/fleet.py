"""The demo's worker processes: RQ workers for the legacy backend, migrator workers for the new one."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Fleet:
    redis_url: str
    database_url: str
    logdir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _env(self, side: str) -> dict[str, str]:
        root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        return {**os.environ, "PYTHONPATH": path, "REDIS_URL": self.redis_url, "DATABASE_URL": self.database_url,
                "MIGRATOR_DEMO_LEDGER_URL": self.database_url, "MIGRATOR_DEMO_SIDE": side, "PYTHONUNBUFFERED": "1"}

    def _spawn(self, name: str, argv: list[str], side: str) -> None:
        log = open(self.logdir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(argv, env=self._env(side), stdout=log, stderr=subprocess.STDOUT)

    def start_rq(self, name: str) -> None:
        rq_bin = Path(sys.executable).with_name("rq")
        argv = [str(rq_bin) if rq_bin.exists() else "rq", "worker", "--with-scheduler", "--url", self.redis_url,
                "--worker-class", "rq.worker.SimpleWorker", "--name", f"demo-{name}-{os.getpid()}", "default"]
        self._spawn(name, argv, "rq")

    def start_migrator(self, name: str) -> None:
        argv = [sys.executable, "-m", "migrator", "worker", "--queues", "default", "--recovery-grace", "1"]
        self._spawn(name, argv, "postgres")

    def kill(self, name: str) -> int:
        """SIGKILL, as the OOM killer or a lost machine would: no chance to clean up."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return proc.pid

    def name_of(self, pid: int) -> str | None:
        return next((name for name, proc in self.procs.items() if proc.pid == pid), None)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)
