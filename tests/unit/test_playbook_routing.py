"""Routing steps as targets, with plain values: a step already applied is recognised (a resumed run never edits
twice), the jobs a step moves, and what undoing it restores."""
from __future__ import annotations

from migrator.playbook import routing_steps
from migrator.playbook.values import Kind, Step
from migrator.routing.decide import bucket
from migrator.routing.snapshot import RoutingSnapshot

JOBS = [f"app.jobs.j{i}" for i in range(200)]


def step(kind: Kind, **kw) -> Step:  # type: ignore[no-untyped-def]
    return Step(1, kind, 1, **kw)


def test_a_step_is_reached_once_the_routing_is_its_target():
    flip = step(Kind.FLIP, job="app.jobs.a")
    legacy = RoutingSnapshot()
    assert not routing_steps.reached(flip, legacy)
    after = routing_steps.target(flip, legacy)
    assert routing_steps.reached(flip, after) and after.flipped == {"app.jobs.a"}
    rollout = step(Kind.ROLLOUT, percent=25.0)
    assert routing_steps.reached(rollout, RoutingSnapshot(percent=25.0, version=9))
    assert not routing_steps.reached(rollout, RoutingSnapshot(rollout_all=True, percent=100.0))
    assert routing_steps.reached(step(Kind.ROLLOUT, everything=True), RoutingSnapshot(rollout_all=True, percent=100))
    assert routing_steps.reached(step(Kind.UNFLIP, job="app.jobs.a"), legacy)


def test_moved_jobs_are_those_newly_routed_to_postgres():
    before = RoutingSnapshot(percent=10.0, pinned=frozenset({"app.jobs.j1"}))
    after = routing_steps.target(step(Kind.ROLLOUT, percent=50.0), before)
    moved = routing_steps.moved_jobs(JOBS, before, after)
    assert moved == sorted(j for j in JOBS if 1000 <= bucket(j) < 5000 and j != "app.jobs.j1")
    assert routing_steps.moved_jobs(JOBS, after, before) == []


def test_shapes_say_what_a_step_does():
    assert step(Kind.ROLLOUT, everything=True).title == "rollout all"
    assert step(Kind.DRAIN, backend="rq", ignore=("scheduled",)).title == "drain-check rq (but scheduled)"
