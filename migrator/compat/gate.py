"""The compat gate in front of `flip` and `rollout`: a routing change may not move a job to the new backend while
its pending payloads would not bind to the code or the new backend cannot carry them.

"Recently seen" payloads are the job's pending ones (in RQ, and in Postgres when given) plus the enqueues this
process's router sent back to RQ because the new backend refused them (router.REFUSED). Jobs refused at enqueue
by other processes wait in RQ with `migrator_refused` in their meta, so the scan of RQ sees their payloads.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from adapters.base import BackendError, BackendName, JobBackend
from migrator.compat.scan import JobScan, ScanReport, scan_payloads
from migrator.errors import CheckFailed, MigratorError
from migrator.routing.decide import decide
from migrator.routing.snapshot import RoutingSnapshot


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """Whether a routing change may go ahead: the jobs it moves to the new backend and what would fail."""

    action: str
    moving: tuple[str, ...]  # job names (with pending payloads, or refused at enqueue) the change moves to new
    problems: tuple[JobScan, ...]  # moving jobs with payloads that would fail
    refused: tuple[tuple[str, int], ...] = ()  # moving jobs this process's router sent back to RQ, and how often
    scanned: int = 0  # payloads tested

    @property
    def ok(self) -> bool:
        return not self.problems and not self.refused

    def reason(self) -> str:
        """One line naming each blocked job and its first reason."""
        parts = [f"{p.job_name}: {p.failing} of {p.seen} pending payloads would fail ({p.reasons[0][0]})"
                 for p in self.problems]
        parts += [f"{name}: {n} enqueues refused by the new backend and sent to RQ" for name, n in self.refused
                  if all(p.job_name != name for p in self.problems)]
        return "; ".join(parts)

    def summary(self) -> str:
        if self.ok:
            return f"{self.action}: {self.scanned} pending payloads of {len(self.moving)} moving jobs checked, none fails"
        return f"{self.action} refused: {self.reason()}"

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "action": self.action, "moving": list(self.moving), "scanned": self.scanned,
                "problems": [p.to_json() for p in self.problems],
                "refused_at_enqueue": {name: n for name, n in self.refused}, "summary": self.summary()}


def moves(job_name: str, before: RoutingSnapshot, after: RoutingSnapshot) -> bool:
    """True when the change sends `job_name` from the legacy backend to the new one."""
    return decide(job_name, before).backend is BackendName.RQ and decide(job_name, after).backend is BackendName.POSTGRES


def flipped(before: RoutingSnapshot, job_name: str) -> RoutingSnapshot:
    return before.with_job(job_name, BackendName.POSTGRES)


def rolled_out(before: RoutingSnapshot, percent: float | None) -> RoutingSnapshot:
    """The routing after `rollout --all` (percent None) or `rollout --percent P` (P already validated)."""
    if percent is None:
        return replace(before, rollout_all=True, percent=100.0)
    return replace(before, rollout_all=False, percent=percent)


def check_change(action: str, backends: Sequence[JobBackend], before: RoutingSnapshot, after: RoutingSnapshot,
                 job_name: str | None = None, carrier: JobBackend | None = None,
                 refused: Mapping[str, int] | None = None) -> GateVerdict:
    """Scan the pending payloads of `backends` (one job's when `job_name` is given) and judge the jobs that the
    change from `before` to `after` moves to the new backend."""
    report: ScanReport = scan_payloads(backends, job_name, carrier)
    names = {j.job_name for j in report.jobs} | set(refused or {})
    if job_name is not None:
        names = {n for n in names if n == job_name} | {job_name}
    moving = tuple(sorted(n for n in names if moves(n, before, after)))
    problems = tuple(j for j in report.failing_jobs() if j.job_name in moving)
    counted = tuple(sorted((n, c) for n, c in (refused or {}).items() if n in moving and c))
    scanned = sum(j.seen for j in report.jobs if j.job_name in moving)
    return GateVerdict(action, moving, problems, counted, scanned)


def guard(action: str, legacy: JobBackend, new: JobBackend, before: RoutingSnapshot, after: RoutingSnapshot,
          job_name: str | None = None, force: bool = False,
          refused: Mapping[str, int] | None = None) -> dict[str, Any] | None:
    """The gate as `flip` and `rollout` use it: CheckFailed naming what would fail; with `force`, the audit-log
    detail of what was overridden (None when nothing was). Payloads scanned: the moving jobs' ones in RQ."""
    try:
        verdict = check_change(action, [legacy], before, after, job_name, carrier=new, refused=refused)
    except (BackendError, MigratorError) as exc:
        if not force:
            raise
        return {"forced": f"compat gate not run: {exc}"}
    if verdict.ok:
        return None
    if not force:
        scan = f"migrator compat scan --backend rq --job {job_name}" if job_name else "migrator compat scan --backend rq"
        raise CheckFailed(f"{verdict.summary()}; see `{scan}`, or override with --force (recorded in the audit log)")
    return {"forced": verdict.reason()}
