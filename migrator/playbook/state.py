"""A playbook's runs as the operator sees them (the latest run, its steps, who runs it now), on top of
adapters.base.PlaybookState; abort; and the actor name its routing changes carry in `migrator history`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.base import LockHolder, PlaybookRunRow, PlaybookState, PlaybookStepRow, SchemaMissing
from migrator.errors import BadInput
from migrator.playbook.values import Plan

RUNNING, STOPPED, DONE, ABORTED = "running", "stopped", "done", "aborted"


def actor(playbook: str, run_id: int, index: int, what: str = "") -> str:
    """`playbook:<name>#<run>:<step>`: who made a routing change, in the audit log beside manual flips."""
    return f"playbook:{playbook}#{run_id}:{index}" + (f":{what}" if what else "")


@dataclass(frozen=True, slots=True)
class RunView:
    playbook: str
    run: PlaybookRunRow | None
    steps: tuple[PlaybookStepRow, ...]
    holder: LockHolder | None  # the process running it now, if any

    def step(self, index: int) -> PlaybookStepRow | None:
        return next((s for s in self.steps if s.index == index), None)

    def to_json(self, plan: Plan | None = None) -> dict[str, Any]:
        run = self.run
        titles = {s.index: s.title for s in plan.steps} if plan else {}
        return {
            "playbook": self.playbook,
            "run": None if run is None else {
                "id": run.id, "status": run.status, "step": run.step, "message": run.message,
                "fingerprint": run.fingerprint, "started_at": run.started_at.isoformat(),
                "updated_at": run.updated_at.isoformat(),
                "finished_at": run.finished_at.isoformat() if run.finished_at else None},
            "holder": None if self.holder is None else {"host": self.holder.host, "pid": self.holder.pid,
                                                        "since": self.holder.since.isoformat()},
            "steps": [{"index": s.index, "kind": s.kind, "title": titles.get(s.index, s.kind), "status": s.status,
                       "intent": dict(s.intent), "outcome": dict(s.outcome), "started_at": s.started_at.isoformat(),
                       "finished_at": s.finished_at.isoformat() if s.finished_at else None} for s in self.steps],
        }


def view(state: PlaybookState, playbook: str) -> RunView:
    run = state.latest_run(playbook)
    steps = tuple(state.steps(run.id)) if run else ()
    return RunView(playbook, run, steps, state.holder(playbook))


def abort(state: PlaybookState, playbook: str) -> RunView:
    """Mark the latest unfinished run aborted: a live runner stops at its next check, the next `run` starts over.
    Routing is left as it is (`migrator rollback` sends everything back to RQ)."""
    run = state.latest_run(playbook)
    if run is None or run.status not in (RUNNING, STOPPED):
        what = "has never run" if run is None else f"run #{run.id} is already {run.status}"
        raise BadInput(f"playbook {playbook!r} {what}: nothing to abort")
    state.set_run(run.id, ABORTED, run.step, "aborted by the operator")
    return view(state, playbook)


@dataclass(frozen=True, slots=True)
class CurrentStep:
    """Where an unfinished run of a playbook is: what `migrator status` shows."""

    playbook: str
    run_id: int
    status: str
    step: int
    kind: str  # of the step being run (or the last one reached), "" before the first
    message: str

    def line(self) -> str:
        what = f"step {self.step}" + (f" ({self.kind})" if self.kind else "")
        return f"playbook {self.playbook} run #{self.run_id}: {self.status} at {what}" + (
            f": {self.message}" if self.message else "")

    def to_json(self) -> dict[str, Any]:
        return {"playbook": self.playbook, "run": self.run_id, "status": self.status, "step": self.step,
                "kind": self.kind, "message": self.message}


def current_steps(state: PlaybookState) -> list[CurrentStep]:
    """Every playbook with a run in progress or stopped, and its current step; none before the playbook tables
    exist (a schema not migrated since playbooks came)."""
    try:
        active = state.active_runs()
        out = []
        for run in active:
            rows = {s.index: s.kind for s in state.steps(run.id)}
            out.append(CurrentStep(run.playbook, run.id, run.status, run.step, rows.get(run.step, ""), run.message))
        return out
    except SchemaMissing:
        return []
