"""The performance report: runs the benchmarks in one go and writes docs/performance.md with its PNG charts.

    .venv/bin/pip install -e '.[bench]'          # matplotlib, for the charts
    .venv/bin/python bench/report.py             # every bench, 3 reps each (about 25 minutes on 2 cores)
    .venv/bin/python bench/report.py --verdict-n 200000 --only backend,concurrency   # smaller, fewer
    .venv/bin/python bench/report.py --from docs/performance/results.json            # re-render only

Each bench script runs as its own process (its own servers, `--json` where it has it) with BENCH_REPS=--reps;
the raw results go to docs/performance/results.json, so the page and charts can be re-rendered without
re-measuring. pgqueuer and procrastinate are measured by bench/bench_peers.py when `--peers-python` (default:
$BENCH_PEERS_PYTHON, else this interpreter) can import them; otherwise the report says they were not installed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import report_page  # noqa: E402
from bench.common import say  # noqa: E402

OUT = ROOT / "docs" / "performance.md"
CHARTS = ROOT / "docs" / "performance"
STEPS = ("backend", "concurrency", "router", "drain", "transfer", "compat", "peers")


LOADS: dict[str, str] = {}  # bench script -> the 1-minute load average before and after it ran


def run_script(args: list[str], env: dict[str, str], python: str = sys.executable) -> tuple[int, str]:
    """Run one bench script; its progress goes to our stderr, its stdout is returned."""
    say(f"== {' '.join(args)}")
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    done = subprocess.run([python, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    took = time.perf_counter() - t0
    LOADS[Path(args[0]).name] = f"{load0:.1f} -> {os.getloadavg()[0]:.1f} ({took:.0f} s)"
    say(f"== exit {done.returncode} after {took:.0f}s")
    return done.returncode, done.stdout


def as_json(code: int, out: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(out)
    except json.JSONDecodeError:
        return {"error": f"exit {code}, no JSON", "stdout": out[-2000:]}
    data["exit"] = code
    return data


DRAIN_LINE = re.compile(r"^(?P<what>.+?)\s+median\s+(?P<median>[\d.]+)s \(min (?P<min>[\d.]+), max (?P<max>[\d.]+), "
                        r"(?P<runs>\d+) runs\)\s+aim <= (?P<aim>[\d.]+)s (?P<verdict>\w+)")
COMPAT_LINE = re.compile(r"median (?P<median>[\d,]+) payloads/s \(min (?P<min>[\d,]+), max (?P<max>[\d,]+)")
RQ_ENQUEUE_LINE = re.compile(r"rq enqueue_many.*?median (?P<median>[\d,]+) jobs/s")


def parse_drain(code: int, out: str) -> dict[str, Any]:
    rows = [{k: (v if k in ("what", "verdict") else float(v)) for k, v in m.groupdict().items()}
            for m in map(DRAIN_LINE.match, out.splitlines()) if m]
    return {"rows": rows, "exit": code, "stdout": out} if rows else {"error": f"exit {code}", "stdout": out[-2000:]}


def parse_compat(code: int, out: str) -> dict[str, Any]:
    m, e = COMPAT_LINE.search(out), RQ_ENQUEUE_LINE.search(out)
    if not m:
        return {"error": f"exit {code}", "stdout": out[-2000:]}
    num = lambda s: float(s.replace(",", ""))  # noqa: E731
    return {"scan": {k: num(v) for k, v in m.groupdict().items()},
            "rq_enqueue": num(e["median"]) if e else None, "exit": code, "stdout": out}


def peers_python(given: str | None) -> str | None:
    """An interpreter that imports pgqueuer or procrastinate, or None."""
    for python in filter(None, [given, os.environ.get("BENCH_PEERS_PYTHON"), sys.executable]):
        probe = "import importlib.util as u; print(any(u.find_spec(m) for m in ('pgqueuer', 'procrastinate')))"
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True)
        if done.stdout.strip() == "True":
            return python
    return None


def measure(args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "BENCH_REPS": str(args.reps), "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    only = args.only.split(",") if args.only else list(STEPS)
    res: dict[str, Any] = {}
    if "backend" in only:
        res["backend"] = as_json(*run_script(["bench/bench_backend.py", "--json"], env))
    if "concurrency" in only:
        res["concurrency"] = as_json(*run_script(["bench/bench_concurrency.py", "--json"], env))
    if "router" in only:
        res["router"] = as_json(*run_script(["bench/bench_router.py", "--json"], env))
    if "drain" in only:
        res["drain"] = parse_drain(*run_script(["bench/bench_drain.py"], {**env, "BENCH_N_VERDICT": str(args.verdict_n)}))
    if "transfer" in only:
        res["transfer"] = as_json(*run_script(["bench/bench_transfer.py", "--json"], env))
    if "compat" in only:
        res["compat"] = parse_compat(*run_script(["bench/bench_compat.py"], env))
    if "peers" in only:
        python = peers_python(args.peers_python)
        res["peers"] = (as_json(*run_script(["bench/bench_peers.py", "--json", "--python", python], env)) if python
                        else {"error": "neither pgqueuer nor procrastinate imports in any interpreter given"})
    return res


def machine() -> dict[str, str]:
    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpus": str(os.cpu_count()),
            "load average at the end": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions of every measurement (median, min-max)")
    ap.add_argument("--verdict-n", type=int, default=1_000_000, help="queued RQ jobs for the drain-check verdict")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(STEPS)}")
    ap.add_argument("--peers-python", help="an interpreter with pgqueuer/procrastinate installed")
    ap.add_argument("--from", dest="source", help="re-render from a results.json instead of measuring")
    ap.add_argument("--merge", action="store_true",
                    help="measure only --only, keep the other results of docs/performance/results.json")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    CHARTS.mkdir(parents=True, exist_ok=True)
    if args.source:
        data = json.loads(Path(args.source).read_text())
    else:
        t0 = time.perf_counter()
        started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        results = measure(args)
        data = {"started": started, "minutes": round((time.perf_counter() - t0) / 60, 1), "reps": args.reps,
                "verdict_n": args.verdict_n, "machine": machine(), "loads": LOADS, "results": results}
        if args.merge and (CHARTS / "results.json").exists():
            old = json.loads((CHARTS / "results.json").read_text())
            old["results"].update(results)
            old.setdefault("loads", {}).update(LOADS)
            old["merged"] = [*old.get("merged", []), f"{', '.join(results)} measured again {started}"]
            data = old
        (CHARTS / "results.json").write_text(json.dumps(data, indent=1, default=str))
    Path(args.out).write_text(report_page.render(data, CHARTS))
    say(f"wrote {args.out} and charts in {CHARTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
