"""`migrator demo` end to end: a real migration under load, on its own local servers."""
from __future__ import annotations

import json

from tests.support import run_cli


def test_demo_migrates_under_load_with_nothing_lost_or_duplicated():
    done = run_cli("demo", "--seconds", "6", "--rate", "80", "--json", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["enqueued"] > 100
    assert report["ran"] == report["enqueued"]
    assert (report["lost"], report["duplicated"]) == (0, 0)
    assert report["ran_on"].get("rq", 0) > 0 and report["ran_on"].get("postgres", 0) > 0
