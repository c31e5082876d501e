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
# A product bug the soak found, not fixed yet: the test xfails when it alone explains the failures (anything else fails).
KNOWN_STUCK = ("a job whose outcome a Postgres crash forgot (acknowledged with synchronous_commit = off) stays 'running' "
               "under its live worker until that worker exits (tests/integration/test_soak_findings.py)")


def known_bugs(report: dict) -> list[str]:
    """The known bug, when it explains every failure of this report; [] if something else failed too. A job stuck
    'running' after a Postgres crash shows as stuck (never finished) or as a late second run (once its worker died)."""
    stuck = report["stuck"]
    stuck_ids = {s.split(" ", 1)[0] for s in stuck}  # a stuck job may have run (its outcome lost) or not yet
    late = [d["key"] for d in report["duplicates"] if d["cause"].startswith("STUCK after the postgres")]
    if (report["duplicates_unexplained"] != len(late) or report["enqueue_errors"] or report["orphaned_in_rq"]
            or not set(report["lost_keys"]) <= stuck_ids or report["lost"] > len(report["lost_keys"])):
        return []
    return [f"{KNOWN_STUCK}: {stuck + late}"] if stuck or late else []


@pytest.mark.timeout(SECONDS + 600)
def test_chaos_soak_loses_nothing_and_runs_twice_only_what_a_kill_or_crash_interrupted():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--seconds", str(SECONDS), "--seed", "7",
                           "--drain-timeout", "240", "--json"], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=SECONDS + 580)
    assert done.stdout.strip(), done.stderr[-3000:]
    report = json.loads(done.stdout)
    timeline = "\n".join(f"{e['at']:7.1f} {e['kind']:<18} {e['what']}" for e in report["timeline"])
    if not report["ok"] and known_bugs(report):
        pytest.xfail("known bug: " + " | ".join(known_bugs(report)))
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
