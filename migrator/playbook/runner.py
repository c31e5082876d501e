"""The playbook runner: one run per playbook at a time (a session lock), steps carried out in order, each
recorded as intent before it acts and outcome after, so a run killed at any instant resumes at the right step
without repeating a routing change or skipping a gate."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.base import PlaybookRunRow, PlaybookStepRow
from migrator.errors import BadInput
from migrator.playbook import state as runs
from migrator.playbook.context import Context
from migrator.playbook.gates import GateResult
from migrator.playbook.perform import Aborted, Performer, StepResult
from migrator.playbook.values import Kind, Plan, Step

Confirm = Callable[[str], bool]


class Observer:
    """What a run reports while it runs (the CLI's live view overrides these; the default shows nothing)."""

    def step_started(self, step: Step, resumed: bool) -> None: ...

    def progress(self, step: Step, text: str, elapsed: float, total: float | None,
                 gates: tuple[GateResult, ...] = ()) -> None: ...

    def step_finished(self, step: Step, result: StepResult) -> None: ...


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run_id: int
    status: str  # done | stopped | paused | aborted
    step: int  # the step to run next (or that stopped the run)
    message: str
    gates: tuple[GateResult, ...] = field(default_factory=tuple)

    @property
    def exit_code(self) -> int:
        return 1 if self.status in (runs.STOPPED, runs.ABORTED) else 0

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run_id, "status": self.status, "step": self.step, "message": self.message,
                "gates": [g.to_json() for g in self.gates]}


class Runner:
    def __init__(self, plan: Plan, ctx: Context, confirm: Confirm, observer: Observer | None = None,
                 yes: bool = False) -> None:
        self.plan, self.ctx, self.yes = plan, ctx, yes
        self.confirm = confirm
        self.observer = observer or Observer()

    def run(self) -> RunOutcome:
        holder = self.ctx.state.try_lock(self.plan.name)
        if holder is not None:
            raise BadInput(f"playbook {self.plan.name!r} is being run by {holder.host} pid {holder.pid} since "
                           f"{holder.since:%Y-%m-%d %H:%M:%S %Z}; wait for it, or stop that process and run again")
        try:
            return self._run(self._resume_or_start())
        finally:
            self.ctx.state.release_lock(self.plan.name)

    def _resume_or_start(self) -> PlaybookRunRow:
        last = self.ctx.state.latest_run(self.plan.name)
        if last is not None and last.status in (runs.RUNNING, runs.STOPPED):
            if last.fingerprint != self.plan.fingerprint:
                raise BadInput(f"the steps of {self.plan.path} changed since run #{last.id} of {self.plan.name!r} "
                               f"started; `migrator playbook abort {self.plan.path}` to start over with this plan")
            self.ctx.state.set_run(last.id, runs.RUNNING, last.step, "")
            return last
        return self.ctx.state.start_run(self.plan.name, self.plan.fingerprint)

    def _run(self, run: PlaybookRunRow) -> RunOutcome:
        records = {s.index: s for s in self.ctx.state.steps(run.id)}
        index = run.step
        performer = Performer(self.plan, self.ctx, run.id, self.observer.progress, self._check_abort(run.id))
        check_abort = self._check_abort(run.id)
        while index <= len(self.plan.steps):
            step = self.plan.steps[index - 1]
            record = records.get(index)
            try:
                check_abort()  # between steps too: a step without a wait would never look
            except Aborted:
                return RunOutcome(run.id, runs.ABORTED, index, "aborted by the operator")
            if not self._confirmed(step, record):
                message = f"paused before step {index} ({step.title}): not confirmed; run again to continue"
                self.ctx.state.set_run(run.id, runs.STOPPED, index, message)
                return RunOutcome(run.id, "paused", index, message)
            self.observer.step_started(step, resumed=record is not None and record.status == "started")
            try:
                result = performer.perform(step, record, records)
            except Aborted:
                return RunOutcome(run.id, runs.ABORTED, index, "aborted by the operator")
            self.observer.step_finished(step, result)
            records = {s.index: s for s in self.ctx.state.steps(run.id)}
            if not result.ok:
                next_step = result.resume_at or index
                message = f"step {index} ({step.title}) failed: {result.message}"
                self.ctx.state.set_run(run.id, runs.STOPPED, next_step, message)
                return RunOutcome(run.id, runs.STOPPED, next_step, message, result.gates)
            index += 1
        self.ctx.state.set_run(run.id, runs.DONE, index, "every step passed")
        return RunOutcome(run.id, runs.DONE, index, f"{self.plan.name}: every step passed")

    def _confirmed(self, step: Step, record: PlaybookStepRow | None) -> bool:
        """Each step is confirmed before it runs (once: a step resumed after a crash was confirmed already);
        confirm and checklist steps always ask, as their point is the operator's word. --yes answers yes."""
        if self.yes or (record is not None and record.status == "started" and step.kind not in (Kind.CONFIRM,
                                                                                              Kind.CHECKLIST)):
            return True
        return self.confirm(prompt(step))

    def _check_abort(self, run_id: int) -> Callable[[], None]:
        def check() -> None:
            latest = self.ctx.state.latest_run(self.plan.name)
            if latest is not None and latest.id == run_id and latest.status == runs.ABORTED:
                raise Aborted()
        return check


def prompt(step: Step) -> str:
    if step.kind is Kind.CONFIRM:
        return f"step {step.index}: {step.text}\nconfirm when done (deployed)"
    if step.kind is Kind.CHECKLIST:
        items = "".join(f"\n  [ ] {item}" for item in step.items)
        return f"step {step.index}: {step.text}{items}\nconfirm every item is done"
    return f"run step {step.index}: {step.title}?"
