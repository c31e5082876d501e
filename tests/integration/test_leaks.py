"""The leak checks of conftest really fail: a planted thread, child process and advisory lock are each found,
named in the report, and cleaned up."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from migrator.localservers import LocalPostgres
from tests import leaks
from tests.support import subprocess_env, wait_for


def test_a_planted_thread_is_reported_until_it_ends() -> None:
    before = threading.enumerate()
    release = threading.Event()
    planted = threading.Thread(target=release.wait, name="planted-leak", daemon=True)
    planted.start()
    try:
        assert leaks.new_threads(before) == [planted]
        assert leaks.settle(lambda: leaks.new_threads(before), grace=0.2) == [planted]
        assert "planted-leak" in leaks.report("threads", [planted])
    finally:
        release.set()
        planted.join(5)
    assert leaks.new_threads(before) == []


def test_a_planted_process_and_its_child_are_reported_and_killed() -> None:
    before = {child.pid for child in leaks.child_processes()}
    proc = subprocess.Popen(["sh", "-c", "sleep 60 & wait"])
    try:
        found = leaks.new_children(before)
        assert [child.pid for child in found] == [proc.pid]
        assert "sleep 60" in str(found[0])
        grandchild = wait_for(lambda: leaks.child_processes(proc.pid), timeout=10, what="sh to start sleep")[0]
    finally:
        leaks.kill_trees([proc.pid])
    assert leaks.new_children(before) == []
    assert proc.poll() is not None
    assert wait_for(lambda: leaks.gone(grandchild.pid), timeout=10, what="the grandchild to die")


def test_a_planted_advisory_lock_is_reported_and_its_session_ended(pg_server: LocalPostgres, pg_url: str) -> None:
    dbname = conninfo_to_dict(pg_url)["dbname"]
    assert leaks.advisory_locks(pg_server.url, dbname) == []
    conn = psycopg.connect(pg_url, autocommit=True, application_name="planted-leak")
    try:
        conn.execute("SELECT pg_advisory_lock(4242), pg_advisory_lock(7, 8)")
        held = leaks.advisory_locks(pg_server.url, dbname)
        assert {(lock.pid, lock.granted) for lock in held} == {(conn.info.backend_pid, True)}
        text = leaks.report("advisory locks", held)
        assert "4242" in text and "(7, 8)" in text and "planted-leak" in text
        leaks.end_sessions(pg_server.url, {lock.pid for lock in held})
        assert wait_for(lambda: leaks.advisory_locks(pg_server.url, dbname) == [], timeout=10,
                        what="the planted lock's session to end")
    finally:
        conn.close()


LEAKY_TESTS = '''
import subprocess, sys, threading
from tests.conftest import no_leaks  # noqa: F401  the autouse check under test

def test_leaves_a_thread():
    threading.Thread(target=threading.Event().wait, name="left-behind", daemon=True).start()

def test_leaves_a_process():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # left-behind"])

def test_after_the_leaks_starts_clean():
    pass
'''


def test_the_autouse_fixture_fails_leaky_tests_and_cleans_up(tmp_path: Path) -> None:
    (tmp_path / "test_leaky.py").write_text(textwrap.dedent(LEAKY_TESTS))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_leaky.py"],
                            cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    out = result.stdout
    assert result.returncode == 1, out
    assert "3 passed, 2 errors" in out, out  # the test after the leaks passes: it started clean
    assert "ERROR test_leaky.py::test_leaves_a_thread" in out and "left-behind" in out, out
    assert "ERROR test_leaky.py::test_leaves_a_process" in out and "1 child processes behind" in out, out
    assert "time.sleep(60)" in out, out
    assert not [pid for pid in leaks.running_pids() if "# left-behind" in leaks.cmdline(pid)]  # killed, not orphaned
