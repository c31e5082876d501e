"""Carrying out one step of a run: routing changes compared with their target first (never applied twice), soaks
timed from a recorded start behind the propagation and health gates, gate steps run until recorded as passed, and
the rollback of the run's latest routing change when a step with on_fail = "rollback" fails."""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from adapters.base import BackendError, PlaybookStepRow
from migrator.compat import gate as compat_gate
from migrator.errors import MigratorError
from migrator.playbook import failpoints, gates, routing_steps
from migrator.playbook import state as runs
from migrator.playbook.context import Context
from migrator.playbook.gates import GateResult
from migrator.playbook.values import ROUTING, Kind, Plan, Step
from migrator.routing.snapshot import RoutingSnapshot
from migrator.transfer.run import transfer_pending
from migrator.transfer.values import Direction

Progress = Callable[[Step, str, float, float | None, tuple[GateResult, ...]], None]
HEALTH_EVERY = 5.0  # seconds between health readings during a soak (each reads both backends' inventories)
POLL = 0.25


class Aborted(Exception):
    """`migrator playbook abort` marked the run aborted while it ran."""


@dataclass(frozen=True, slots=True)
class StepResult:
    ok: bool
    message: str
    gates: tuple[GateResult, ...] = field(default_factory=tuple)
    resume_at: int | None = None  # after a rollback: the routing step the next run starts again from


class Performer:
    def __init__(self, plan: Plan, ctx: Context, run_id: int, progress: Progress,
                 check_abort: Callable[[], None]) -> None:
        self.plan, self.ctx, self.run_id = plan, ctx, run_id
        self.progress, self.check_abort = progress, check_abort

    def perform(self, step: Step, record: PlaybookStepRow | None, records: Mapping[int, PlaybookStepRow]) -> StepResult:
        intent = dict(record.intent) if record is not None and record.status == "started" else {}
        if "rollback_of" in intent:  # killed while rolling back: finish that, whatever the step was
            return self._rollback(step, intent, records, GateResult(step.kind, False, {}, intent["reason"]))
        if step.kind in ROUTING:
            return self._routing(step, intent, records)
        if step.kind is Kind.SOAK:
            return self._soak(step, intent, records)
        self._save(step, "started", intent)
        try:
            gate = self._gate(step)
        except (MigratorError, BackendError) as exc:  # a gate that cannot read what it judges does not pass
            gate = GateResult(str(step.kind), False, {}, str(exc))
        if gate.ok:
            self._save(step, "done", intent, {"gate": gate.to_json()}, advance=True)
            return StepResult(True, gate.message, (gate,))
        return self._failed(step, intent, records, gate)

    # -- routing ---------------------------------------------------------------------------------------------
    def _routing(self, step: Step, intent: dict[str, Any], records: Mapping[int, PlaybookStepRow]) -> StepResult:
        actor = runs.actor(self.plan.name, self.run_id, step.index)
        if not intent:  # first attempt: what the routing was, and the RQ baseline of the jobs the step moves
            before = self.ctx.flags.snapshot()
            moved = routing_steps.moved_jobs(self.ctx.known_jobs(), before, routing_steps.target(step, before))
            intent = {"actor": actor, "before": before.to_json(), "moved": moved,
                      "baseline": gates.rq_failure_counts(self.ctx, moved)}
            self._save(step, "started", intent)
        current = self.ctx.flags.snapshot()
        entry_id = None
        if not routing_steps.reached(step, current):
            refused = self._compat_refusal(step, current)
            if refused is not None:  # the same gate as `migrator flip`: never move a job whose payloads would fail
                return self._failed(step, intent, records, refused)
            change = routing_steps.apply(step, self.ctx.flags, actor)
            current, entry_id = change.after, change.entry.id if change.entry else None
            failpoints.reach("after-routing-change")
        note = f"recorded as change #{entry_id}" if entry_id else "the routing already was so: nothing changed"
        self._save(step, "done", intent, {"history_id": entry_id, "version": current.version}, advance=True)
        moved = intent.get("moved", [])
        return StepResult(True, f"{note}; routing version {current.version}; {len(moved)} known jobs moved")

    def _compat_refusal(self, step: Step, current: RoutingSnapshot) -> GateResult | None:
        """The compat gate of `flip`/`rollout` for this routing change: None when every job it moves to the new
        backend has pending payloads that bind and that the new backend can carry."""
        try:
            compat_gate.guard(str(step.kind), self.ctx.legacy, self.ctx.new, current,
                              routing_steps.target(step, current), step.job)
        except (MigratorError, BackendError) as exc:
            return GateResult("compat", False, {}, str(exc))
        return None

    # -- soak ------------------------------------------------------------------------------------------------
    def _soak(self, step: Step, intent: dict[str, Any], records: Mapping[int, PlaybookStepRow]) -> StepResult:
        routing = _latest_routing(records, step.index)
        moved = list(routing.intent.get("moved", [])) if routing else []
        baseline = dict(routing.intent.get("baseline", {})) if routing else {}
        if "soak_started" not in intent:
            version = self.ctx.flags.snapshot().version
            self._save(step, "started", {"version": version})
            prop = self._propagate(step, version)
            if not prop.ok:
                return self._failed(step, {"version": version}, records, prop)
            intent = {"version": version, "soak_started": self.ctx.clock().isoformat(), "propagation": prop.values}
            self._save(step, "started", intent)  # the timer's start, so a resumed soak keeps its window
        start = datetime.fromisoformat(intent["soak_started"])
        assert step.duration is not None and step.health is not None
        last_read, health = -HEALTH_EVERY, None
        while True:
            self.check_abort()
            elapsed = (self.ctx.clock() - start).total_seconds()
            done = elapsed >= step.duration
            if done or time.monotonic() - last_read >= HEALTH_EVERY:
                health, last_read = gates.health(self.ctx, start, moved, baseline, step.health), time.monotonic()
                if not health.ok:
                    return self._failed(step, intent, records, health)
            self.progress(step, "soaking", min(elapsed, step.duration), step.duration, (health,) if health else ())
            if done and health is not None:
                self._save(step, "done", intent, {"gate": health.to_json()}, advance=True)
                return StepResult(True, health.message, (health,))
            self.ctx.sleep(max(0.0, min(POLL, step.duration - elapsed)))

    def _propagate(self, step: Step, version: int) -> GateResult:
        """Wait until every live router applies `version`, up to the plan's bound."""
        started = time.monotonic()
        while True:
            self.check_abort()
            result = gates.propagation(self.ctx, version)
            waited = time.monotonic() - started
            self.progress(step, "waiting for every router", waited, self.plan.propagation_within, (result,))
            if result.ok or waited >= self.plan.propagation_within:
                return result
            self.ctx.sleep(POLL)

    # -- gates -----------------------------------------------------------------------------------------------
    def _gate(self, step: Step) -> GateResult:
        if step.kind is Kind.CANARY:
            return gates.canary(self.ctx, step)
        if step.kind is Kind.COMPAT:
            return gates.compat(self.ctx, step)
        if step.kind is Kind.DRAIN:
            def show(report: Any, waited: float, quiet: float) -> None:
                self.check_abort()
                values = gates.drained_values(report)
                self.progress(step, f"waiting: pending {values['pending']}, quiet {quiet:.0f}s", waited,
                              step.timeout, (GateResult("drained", report.ok, values),))
            return gates.drained(self.ctx, step, on_poll=show)
        if step.kind is Kind.TRANSFER:
            return self._transfer(step)
        # confirm / checklist: the operator's word was given before the step ran
        return GateResult("confirm", True, {"by": runs.actor(self.plan.name, self.run_id, step.index)}, "confirmed")

    def _transfer(self, step: Step) -> GateResult:
        direction = Direction.TO_POSTGRES if step.source == "rq" else Direction.TO_RQ
        # transfer is pairwise by nature: it takes the concrete backends wiring built
        report = transfer_pending(cast(Any, self.ctx.legacy), cast(Any, self.ctx.new), direction, step.job)
        values = {"moved": report.total_moved, "refused": len(report.refused), "recovered": report.recovered,
                  "waiting": report.waiting}
        if report.refused:
            reasons = "; ".join(f"{r.job_id}: {r.reason}" for r in report.refused[:3])
            return GateResult("transfer", False, values, f"{len(report.refused)} jobs refused ({reasons})")
        return GateResult("transfer", True, values, f"moved {report.total_moved} jobs {direction}"
                          + (f", finished {report.recovered} of an interrupted transfer" if report.recovered else ""))

    # -- failure and rollback --------------------------------------------------------------------------------
    def _failed(self, step: Step, intent: dict[str, Any], records: Mapping[int, PlaybookStepRow],
                gate: GateResult) -> StepResult:
        routing = _latest_routing(records, step.index)
        if step.on_fail != "rollback" or routing is None:
            note = " (nothing to roll back: no routing change in this run yet)" if step.on_fail == "rollback" else ""
            self._save(step, "failed", intent, {"gate": gate.to_json()})
            return StepResult(False, gate.message + note, (gate,))
        intent = {**intent, "rollback_of": routing.index, "reason": gate.message}
        self._save(step, "started", intent)  # the intent first: a run killed mid-rollback finishes it on resume
        return self._rollback(step, intent, records, gate)

    def _rollback(self, step: Step, intent: dict[str, Any], records: Mapping[int, PlaybookStepRow],
                  gate: GateResult) -> StepResult:
        index = int(intent["rollback_of"])
        routing, routing_step = records[index], self.plan.steps[index - 1]
        before = RoutingSnapshot.from_json(dict(routing.intent["before"]))
        actor = runs.actor(self.plan.name, self.run_id, step.index, "rollback")
        change = routing_steps.undo(routing_step, before, self.ctx.flags, actor)
        entry_id = change.entry.id if change.entry else None
        self.ctx.state.save_step(self.run_id, index, routing_step.kind, "rolled-back", routing.intent,
                                 {**routing.outcome, "rolled_back_by": step.index, "rollback_history_id": entry_id})
        self._save(step, "failed", intent, {"gate": gate.to_json(), "rolled_back": index,
                                            "history_id": entry_id}, advance_to=index)
        return StepResult(False, f"{gate.message}; rolled back step {index} ({routing_step.title})"
                          + (f" as change #{entry_id}" if entry_id else ""), (gate,), resume_at=index)

    def _save(self, step: Step, status: str, intent: Mapping[str, Any], outcome: Mapping[str, Any] | None = None,
              advance: bool = False, advance_to: int | None = None) -> None:
        self.ctx.state.save_step(self.run_id, step.index, str(step.kind), status, intent, outcome or {},
                                 step.index + 1 if advance else advance_to)


def _latest_routing(records: Mapping[int, PlaybookStepRow], before: int) -> PlaybookStepRow | None:
    """The run's latest routing step before step `before` that is in effect (done, not rolled back)."""
    done = [r for i, r in records.items() if i < before and r.kind in {k.value for k in ROUTING}
            and r.status == "done"]
    return max(done, key=lambda r: r.index) if done else None
