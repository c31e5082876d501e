"""The gates a playbook step waits behind: canary, compat, drained, health, propagation. Each returns a frozen
GateResult saying what it saw; none changes routing."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from adapters.base import BackendName, JobState
from migrator.canary import run_canary
from migrator.compat.check import check_code
from migrator.compat.scan import scan_payloads
from migrator.drain import strays
from migrator.drain.check import check_drain
from migrator.drain.values import DrainReport
from migrator.drain.wait import wait_until_drained
from migrator.playbook.context import Context
from migrator.playbook.values import HealthLimits, Step
from migrator.routing import presence

Rates = Mapping[str, Sequence[int]]  # job name -> (finished, failed) runs


@dataclass(frozen=True, slots=True)
class GateResult:
    name: str  # canary | compat | drained | health | propagation | transfer | confirm
    ok: bool
    values: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "values": dict(self.values), "message": self.message}


def canary(ctx: Context, step: Step) -> GateResult:
    result = run_canary(ctx.new, step.queue, step.timeout or 30.0)
    values = {"seconds": round(result.seconds, 2), "live_workers": result.live_workers, "state": result.state}
    return GateResult("canary", result.ok, values, result.detail)


def compat(ctx: Context, step: Step) -> GateResult:
    """`compat check` (the code against the lock file), then, with scan, the live payloads against the code."""
    report = check_code(ctx.settings)
    values: dict[str, Any] = {"check": report.summary()}
    ok, parts = report.ok, [report.summary()]
    if step.scan:
        backends = [b for b in (ctx.legacy, ctx.new) if step.backend in ("all", str(b.name))]
        scan = scan_payloads(backends, step.job, pickles=ctx.settings.pickle_payloads)
        values["scan"] = scan.summary()
        ok, parts = ok and scan.ok, parts + [scan.summary()]
    return GateResult("compat", ok, values, "; ".join(parts))


def drain_checker(ctx: Context, backend: str, job: str | None, ignore: Sequence[str] = ()) -> Callable[[], DrainReport]:
    """One drain check of `backend` (rq | postgres | all), stray enqueues dated by the routing history; jobs in
    the places of `ignore` do not count (a plan drains what RQ can run by itself, then transfers the rest)."""
    legacy = ctx.legacy if backend in ("rq", "all") else None
    new = ctx.new if backend in ("postgres", "all") else None
    timeline = strays.load_timeline(ctx.flags) if legacy is not None else None
    since = timeline.since if timeline is not None else None
    bound = strays.propagation_bound(ctx.settings)

    def check() -> DrainReport:
        report = check_drain(legacy, new, job, queues=ctx.settings.queues, routed_since=since, bound=bound)
        if not ignore:
            return report
        sides = tuple(replace(s, rows=tuple(r for r in s.rows if str(r.place) not in ignore)) for s in report.sides)
        return replace(report, sides=sides)
    return check


def drained_values(report: DrainReport) -> dict[str, Any]:
    return {"pending": {str(b): n for b, n in report.totals().items()}, "strays": sum(s.count for s in report.strays),
            "warnings": [w.message for w in report.warnings]}


def drained(ctx: Context, step: Step, on_poll: Callable[[DrainReport, float, float], None] | None = None) -> GateResult:
    """Drained (and no stray enqueues) without a break for the quiet period, within the timeout."""
    outcome = wait_until_drained(drain_checker(ctx, step.backend or "rq", step.job, step.ignore), step.timeout or 600.0,
                                 step.quiet_period or 0.0, on_poll=on_poll)
    values = {**drained_values(outcome.report), "waited": round(outcome.waited, 1),
              "quiet_for": round(outcome.quiet_for, 1)}
    what = step.job or step.backend
    if outcome.ok:
        return GateResult("drained", True, values, f"{what} drained, quiet for {outcome.quiet_for:.0f}s")
    pending = ", ".join(f"{b} {n}" for b, n in values["pending"].items() if n) or "nothing pending"
    return GateResult("drained", False, values, f"{what} not drained within {step.timeout:g}s: {pending}"
                      + (f"; {values['strays']} stray enqueues" if values["strays"] else ""))


def rq_failure_counts(ctx: Context, jobs: Sequence[str]) -> dict[str, list[int]]:
    """(finished, failed) runs of each job in RQ's registries now: the baseline a moved job is judged against."""
    if not jobs:
        return {}
    wanted = set(jobs)
    out: dict[str, list[int]] = {j: [0, 0] for j in jobs}
    for c in ctx.legacy.counts(by_job=True):
        if c.job_name in wanted and c.state in (JobState.FINISHED, JobState.FAILED):
            out[c.job_name][0 if c.state is JobState.FINISHED else 1] += c.count
    return out


def _rate(finished: int, failed: int) -> float | None:
    return failed / (finished + failed) if finished + failed else None


def health(ctx: Context, since: datetime, moved: Sequence[str], baseline: Rates, limits: HealthLimits) -> GateResult:
    """The soak's health: the moved jobs on Postgres since `since` (all jobs there when the step moved none)."""
    stats = ctx.new.run_stats(since, list(moved) if moved else None)
    runs = stats.finished + stats.failed
    rate = _rate(stats.finished, stats.failed) if runs >= max(1, limits.min_runs) else None
    base = _rate(sum(v[0] for v in baseline.values()), sum(v[1] for v in baseline.values()))
    report = drain_checker(ctx, "all", None)()
    stranded = [w.message for w in report.warnings if w.kind == "stranded"]
    stray_count = sum(s.count for s in report.strays)
    values = {"jobs": len(moved) or "all on postgres", "runs": runs, "failed": stats.failed,
              "failure_rate": _round(rate), "rq_failure_rate": _round(base), "p95_wait": _round(stats.p95_wait),
              "stranded": stranded, "strays": stray_count}
    problems = []
    if rate is not None and rate > limits.max_failure_rate:
        problems.append(f"failure rate {rate:.1%} above {limits.max_failure_rate:.1%}")
    if rate is not None and base is not None and rate > base + limits.margin:
        problems.append(f"failure rate {rate:.1%} worse than {base:.1%} on RQ before the step")
    if stats.p95_wait is not None and stats.p95_wait > limits.max_p95_wait:
        problems.append(f"p95 wait {stats.p95_wait:.1f}s above {limits.max_p95_wait:g}s")
    problems += stranded
    if stray_count:
        problems.append(f"{stray_count} stray enqueues: a moved job still arrives in RQ (old code without the router)")
    if problems:
        return GateResult("health", False, values, "; ".join(problems))
    summary = f"{runs} runs, {stats.failed} failed" + (f", p95 wait {stats.p95_wait:.2f}s" if stats.p95_wait else "")
    return GateResult("health", True, values, summary)


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def propagation(ctx: Context, version: int) -> GateResult:
    """Every live router (heard from within the drop-out bound) applies routing `version` or later."""
    within = presence.drop_out_after(ctx.settings.flag_cache_seconds)
    routers = presence.live_routers(ctx.flags.tables, within)
    behind = presence.lagging(routers, version)
    values = {"version": version, "routers": len(routers), "lagging": [r.to_json() for r in behind]}
    if behind:
        names = ", ".join(f"{r.host} pid {r.pid} (version {r.version})" for r in behind[:5])
        more = f" and {len(behind) - 5} more" if len(behind) > 5 else ""
        return GateResult("propagation", False, values, f"{len(behind)} of {len(routers)} routers do not apply "
                          f"routing version {version} yet: {names}{more}")
    if not routers:
        return GateResult("propagation", True, values, "no live routers: no app process routes jobs now")
    return GateResult("propagation", True, values, f"all {len(routers)} live routers apply version {version}")


__all__ = ["GateResult", "BackendName", "canary", "compat", "drained", "health", "propagation", "rq_failure_counts"]
