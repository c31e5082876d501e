"""Routing steps as targets: what routing a step wants, whether the routing already is so (a resumed run never
changes it twice), how to apply it, which jobs it moves to the new backend, and how to undo it."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from adapters.base import BackendName
from migrator.playbook.values import Kind, Step
from migrator.routing.decide import decide
from migrator.routing.flag_store import Change, FlagStore
from migrator.routing.snapshot import RoutingSnapshot


def target(step: Step, snapshot: RoutingSnapshot) -> RoutingSnapshot:
    """`snapshot` as the step leaves it."""
    if step.kind is Kind.ROLLOUT:
        return replace(snapshot, rollout_all=step.everything, percent=100.0 if step.everything else
                       round(step.percent or 0.0, 2))
    route = {Kind.FLIP: BackendName.POSTGRES, Kind.PIN: BackendName.RQ, Kind.UNFLIP: None}[step.kind]
    assert step.job is not None
    return snapshot.with_job(step.job, route)


def reached(step: Step, snapshot: RoutingSnapshot) -> bool:
    """True when the routing already is what the step wants (applied by a run killed before it recorded so)."""
    return _rule(target(step, snapshot)) == _rule(snapshot)


def _rule(s: RoutingSnapshot) -> tuple[object, ...]:
    return (s.flipped, s.pinned, s.rollout_all, s.threshold)


def apply(step: Step, store: FlagStore, actor: str) -> Change:
    if step.kind is Kind.ROLLOUT:
        return store.rollout_all(by=actor) if step.everything else store.rollout_percent(step.percent or 0.0, by=actor)
    assert step.job is not None
    edit = {Kind.FLIP: store.flip, Kind.PIN: store.pin, Kind.UNFLIP: store.unflip}[step.kind]
    return edit(step.job, actor)


def undo(step: Step, before: RoutingSnapshot, store: FlagStore, actor: str) -> Change:
    """Bring back what the step replaced: the job's own route, or the rollout rule, as they were in `before`
    (other edits made since, by hand or by other steps, are left alone)."""
    if step.kind is Kind.ROLLOUT:
        if before.rollout_all:
            return store.rollout_all(by=actor)
        return store.rollout_percent(before.percent, by=actor)
    assert step.job is not None
    if step.job in before.flipped:
        return store.flip(step.job, actor)
    if step.job in before.pinned:
        return store.pin(step.job, actor)
    return store.unflip(step.job, actor)


def moved_jobs(known: Iterable[str], before: RoutingSnapshot, after: RoutingSnapshot) -> list[str]:
    """Job names that route to the new backend after, and did not before."""
    return sorted(j for j in set(known) | after.flipped
                  if decide(j, before).backend is not BackendName.POSTGRES
                  and decide(j, after).backend is BackendName.POSTGRES)
