"""`migrator demo` end to end: the default playbook run under load, on its own local servers."""
from __future__ import annotations

import json

from tests.support import run_cli


def test_demo_runs_the_default_playbook_under_load_with_nothing_lost_or_duplicated():
    done = run_cli("demo", "--seconds", "6", "--rate", "80", "--json", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["enqueued"] > 100
    assert report["ran"] == report["enqueued"]
    assert (report["lost"], report["duplicated"], report["failed"]) == (0, 0, 0)
    assert report["ran_on"].get("rq", 0) > 0 and report["ran_on"].get("postgres", 0) > 0
    assert report["playbook"]["status"] == "done", report["playbook"]["message"]
