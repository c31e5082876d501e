"""A real PostgreSQL cluster from pgserver's binaries (or the system's), on 127.0.0.1 and a unix socket.

As root, Postgres runs as an unprivileged OS user, because it refuses to run as root.
"""
from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from migrator.errors import Unreachable
from migrator.localservers.ports import free_port

PG_OS_USER = "migrator-pg"


def _postgres_bindir() -> Path:
    try:
        from pgserver import _commands  # type: ignore[import-untyped]
        return Path(_commands.POSTGRES_BIN_PATH)
    except ImportError:
        pass
    for candidate in [shutil.which("pg_ctl"), *sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)]:
        if candidate:
            return Path(candidate).parent
    raise Unreachable("no PostgreSQL found: pip install 'migrator[local]' (pgserver) or apt-get install postgresql")


def _open_path_for(path: Path) -> None:
    """Let an unprivileged user traverse every folder down to `path` (as pgserver does for its binaries)."""
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        p.chmod(mode | stat.S_IXOTH | stat.S_IROTH)


def _pg_user() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", PG_OS_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(PG_OS_USER)
    return entry.pw_uid, entry.pw_gid


class LocalPostgres:
    """A PostgreSQL cluster in `root`, listening on 127.0.0.1:port and a unix socket in `root`."""

    def __init__(self, root: Path, port: int | None = None, durable: bool = True) -> None:
        self.root = Path(root).resolve()
        self.data = self.root / "data"
        self.port = port or free_port()
        self.durable = durable
        self.bindir = _postgres_bindir()
        self._ids = _pg_user()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        ids = self._ids

        def drop_root() -> None:
            if ids:
                os.setgid(ids[1])
                os.setuid(ids[0])

        return subprocess.run([str(self.bindir / args[0]), *args[1:]], capture_output=True, text=True,
                              preexec_fn=drop_root, cwd=self.root)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._ids:
            _open_path_for(self.bindir)
            _open_path_for(self.root.parent)
            os.chown(self.root, *self._ids)
        if not (self.data / "PG_VERSION").exists():
            done = self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
            if done.returncode:
                raise Unreachable(f"initdb failed in {self.data}: {done.stderr.strip()[-300:]}")

    def start(self) -> "LocalPostgres":
        self.init()
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=300"
        if not self.durable:  # tests only: a crash loses the cluster, which tests recreate anyway
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "postgres.log"), "-w", "-t", "60",
                         "-o", opts, "start")
        if done.returncode:
            raise Unreachable(f"postgres did not start: {done.stderr.strip()[-300:]} (see {self.root}/postgres.log)")
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status").returncode == 0
