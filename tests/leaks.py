"""What a test may leave behind, found and cleaned up: advisory locks in its database, threads it started,
child processes of the pytest process. conftest's fixtures call these after every test and fail it on a leak,
so one test's leftovers never show up as another test's flaky failure."""
from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psycopg

GRACE_SECONDS = 3.0  # what a test just stopped may take to finish: a thread joining, a process exiting
T = TypeVar("T")

LOCKS = """
SELECT l.pid, l.classid, l.objid, l.objsubid, l.granted, coalesce(a.application_name, ''), coalesce(a.query, '')
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = %s)
ORDER BY l.pid, l.classid, l.objid
"""


@dataclass(frozen=True, slots=True)
class AdvisoryLock:
    pid: int
    classid: int
    objid: int
    objsubid: int
    granted: bool
    application: str
    query: str

    def __str__(self) -> str:
        key = f"({self.classid}, {self.objid})" if self.objsubid == 2 else str((self.classid << 32) | self.objid)
        held = "held" if self.granted else "awaited"
        return f"advisory lock {key} {held} by backend {self.pid} ({self.application or 'no name'}): {self.query[:80]!r}"


@dataclass(frozen=True, slots=True)
class ChildProcess:
    pid: int
    state: str
    cmdline: str

    def __str__(self) -> str:
        return f"process {self.pid} [{self.state}]: {self.cmdline[:160]}"


def settle(find: Callable[[], Sequence[T]], grace: float = GRACE_SECONDS, interval: float = 0.05) -> Sequence[T]:
    """What `find` still reports once `grace` seconds have passed (sooner if it reports nothing)."""
    deadline = time.monotonic() + grace
    found = find()
    while found and time.monotonic() < deadline:
        time.sleep(interval)
        found = find()
    return found


def advisory_locks(server_url: str, dbname: str) -> list[AdvisoryLock]:
    """Advisory locks held or awaited in database `dbname` by any session but the checker's own."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        return [AdvisoryLock(*row) for row in conn.execute(LOCKS, [dbname]).fetchall()]


def end_sessions(server_url: str, pids: Collection[int]) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])


def new_threads(before: Collection[threading.Thread]) -> list[threading.Thread]:
    """Threads alive now that were not in `before` (compared by object: an ident can be reused)."""
    known = {id(t) for t in before}
    return [t for t in threading.enumerate() if id(t) not in known and t.is_alive()]


def _stat(pid: int) -> tuple[str, int]:
    """(state, ppid) from /proc/PID/stat; the command name in parentheses may itself hold spaces or ')'."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def gone(pid: int) -> bool:
    """The process has exited: no longer there, or a zombie waiting for its parent (or init) to reap it."""
    try:
        state, _ = _stat(pid)
    except OSError:
        return True
    return state in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _processes() -> dict[int, tuple[str, int]]:
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                table[int(entry.name)] = _stat(int(entry.name))
            except (OSError, ValueError):
                pass  # exited while we looked
    return table


def running_pids() -> list[int]:
    return [pid for pid, (state, _) in _processes().items() if state not in ("Z", "X")]


def child_processes(parent: int | None = None) -> list[ChildProcess]:
    """Running children of `parent` (default: this process). Zombies are not running: they are left out."""
    parent = os.getpid() if parent is None else parent
    return [ChildProcess(pid, state, cmdline(pid)) for pid, (state, ppid) in sorted(_processes().items())
            if ppid == parent and state not in ("Z", "X")]


def new_children(before: Collection[int]) -> list[ChildProcess]:
    return [child for child in child_processes() if child.pid not in before]


def kill_trees(pids: Collection[int]) -> None:
    """SIGKILL each process and its descendants (a worker's forked work horse too), then reap our children."""
    table = _processes()
    doomed, frontier = set(pids), list(pids)
    while frontier:
        pid = frontier.pop()
        kids = [p for p, (_, ppid) in table.items() if ppid == pid and p not in doomed]
        doomed.update(kids)
        frontier.extend(kids)
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # reaped already (its Popen did), or not ours


def report(what: str, leaked: Sequence[object]) -> str:
    lines = "\n".join(f"  - {item}" for item in leaked)
    return f"the test left {len(leaked)} {what} behind (now cleaned up):\n{lines}"
