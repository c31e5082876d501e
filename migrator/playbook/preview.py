"""`playbook plan`: what each step would do now and the current value of its gate, read without changing anything
(no canary enqueued, no job moved, no routing edited)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from adapters.base import BackendError
from migrator.errors import MigratorError
from migrator.playbook import gates, routing_steps
from migrator.playbook.context import Context
from migrator.playbook.gates import GateResult
from migrator.playbook.values import ROUTING, Kind, Plan, Step
from migrator.routing import history
from migrator.routing.snapshot import RoutingSnapshot
from migrator.transfer.run import transfer_pending
from migrator.transfer.values import Direction


@dataclass(frozen=True, slots=True)
class StepPreview:
    step: Step
    would: str  # what the step would do from the routing as it is when the plan is read
    gate: GateResult | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.step.to_json(), "would": self.would, "gate": self.gate.to_json() if self.gate else None}


def preview(plan: Plan, ctx: Context) -> list[StepPreview]:
    """Each step in order; routing steps are previewed against the routing the earlier steps would leave."""
    routing = ctx.flags.snapshot()
    known = ctx.known_jobs()
    out = []
    for step in plan.steps:
        try:
            if step.kind in ROUTING:
                after = routing_steps.target(step, routing)
                out.append(_routing(step, routing, after, known))
                routing = after
            else:
                out.append(_gate(step, ctx, routing))
        except (MigratorError, BackendError) as exc:
            out.append(StepPreview(step, "cannot read its gate now", GateResult(str(step.kind), False, {}, str(exc))))
    return out


def _routing(step: Step, before: RoutingSnapshot, after: RoutingSnapshot, known: list[str]) -> StepPreview:
    if routing_steps.reached(step, before):
        return StepPreview(step, "nothing to change: the routing already is so")
    moved = routing_steps.moved_jobs(known, before, after)
    names = ", ".join(moved[:5]) + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")
    return StepPreview(step, f"{history.summarize(before, after)}; moves {len(moved)} known jobs"
                       + (f" ({names})" if moved else ""))


def _gate(step: Step, ctx: Context, routing: RoutingSnapshot) -> StepPreview:
    if step.kind is Kind.CANARY:
        live = [w for w in ctx.new.workers() if w.alive and step.queue in w.queues]
        ok = bool(live)
        return StepPreview(step, f"enqueue a no-op job on queue {step.queue!r}, wait {step.timeout:g}s",
                           GateResult("canary", ok, {"live_workers": len(live)},
                                      f"{len(live)} live migrator workers serve {step.queue!r}"))
    if step.kind is Kind.COMPAT:
        return StepPreview(step, "compat check" + (" and scan" if step.scan else ""), gates.compat(ctx, step))
    if step.kind is Kind.SOAK:
        current = ctx.flags.snapshot().version
        return StepPreview(step, f"wait for every router, then soak {step.duration:g}s behind the health gate",
                           gates.propagation(ctx, current))
    if step.kind is Kind.DRAIN:
        report = gates.drain_checker(ctx, step.backend or "rq", step.job, step.ignore)()
        return StepPreview(step, f"wait up to {step.timeout:g}s until drained and quiet {step.quiet_period:g}s",
                           GateResult("drained", report.ok, gates.drained_values(report),
                                      "drained now" if report.ok else "not drained now"))
    if step.kind is Kind.TRANSFER:
        direction = Direction.TO_POSTGRES if step.source == "rq" else Direction.TO_RQ
        moving = transfer_pending(cast(Any, ctx.legacy), cast(Any, ctx.new), direction, step.job, dry_run=True)
        return StepPreview(step, f"move not-started jobs {direction}",
                           GateResult("transfer", not moving.refused, {"would_move": moving.total_moved,
                                                                       "refused": len(moving.refused)},
                                      f"would move {moving.total_moved}, {len(moving.refused)} refused"))
    return StepPreview(step, step.text + "".join(f"\n  [ ] {item}" for item in step.items))
