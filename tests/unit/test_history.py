"""History summaries with plain values: the one-line change, the rollout rule, and the commands that restore a
routing."""
from __future__ import annotations

from migrator.routing.history import restore_commands, rollout_rule, summarize
from migrator.routing.snapshot import LEGACY, RoutingSnapshot

A, B, C = "app.jobs.a", "app.jobs.b", "app.jobs.c"


def test_rollout_rule() -> None:
    assert rollout_rule(LEGACY) == "off"
    assert rollout_rule(RoutingSnapshot(percent=12.5)) == "12.5%"
    assert rollout_rule(RoutingSnapshot(percent=0.001)) == "off"  # under one bucket of 10,000: nothing routes
    assert rollout_rule(RoutingSnapshot(rollout_all=True, percent=100.0)) == "all"
    assert rollout_rule(RoutingSnapshot(percent=100.0)) == "100%"


def test_summarize_names_each_change() -> None:
    before = RoutingSnapshot(flipped=frozenset({A}), pinned=frozenset({B}), percent=10)
    after = RoutingSnapshot(flipped=frozenset({C}), pinned=frozenset({B, A}), percent=30)
    assert summarize(before, after) == f"+flipped {C}; -flipped {A}; +pinned {A}; rollout 10% -> 30%"


def test_summarize_without_a_change() -> None:
    assert summarize(LEGACY, RoutingSnapshot(version=9)) == "no change"
    assert summarize(RoutingSnapshot(rollout_all=True), LEGACY) == "rollout all -> off"


def test_restore_commands_recreate_the_routing_from_legacy() -> None:
    snapshot = RoutingSnapshot(flipped=frozenset({B, A}), pinned=frozenset({"app.jobs.it's"}), percent=25)
    assert restore_commands(snapshot) == [
        f"migrator flip {A} --force", f"migrator flip {B} --force",
        "migrator flip 'app.jobs.it'\"'\"'s' --back --force",  # quoted for the shell
        "migrator rollout --percent 25",
    ]
    assert restore_commands(RoutingSnapshot(rollout_all=True, percent=100.0)) == ["migrator rollout --all"]
    assert restore_commands(LEGACY) == []
