"""Routing flags as flipper-client items, with plain values: what encode writes, decode reads back."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

pytest.importorskip("flipper", reason="routing flags need flipper-client or felipper-client")

from adapters.base import BackendName  # noqa: E402
from migrator.routing.flipper_items import (JOB_FLAG_PREFIX, NAME_LIMIT, ROLLOUT_FLAG, decode,  # noqa: E402
                                            encode_job, encode_rollout, job_flag_name)
from migrator.routing.snapshot import LEGACY, RoutingSnapshot  # noqa: E402

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
LONG = "app.jobs.billing.invoices.reconciliation.nightly.send_overdue_reminder_emails_to_customers"


def rows(snapshot: RoutingSnapshot) -> list[tuple[str, bytes]]:
    """The flag rows FlagStore writes for a snapshot: one per flipped or pinned job, and the rollout rule."""
    out = [(job_flag_name(j), encode_job(j, BackendName.POSTGRES)) for j in snapshot.flipped]
    out += [(job_flag_name(j), encode_job(j, BackendName.RQ)) for j in snapshot.pinned]
    return out + [(ROLLOUT_FLAG, encode_rollout(snapshot))]


@pytest.mark.parametrize("snapshot", [
    RoutingSnapshot(version=1, changed_at=AT),
    RoutingSnapshot(flipped=frozenset({"app.jobs.a", "app.jobs.b"}), version=2, changed_at=AT),
    RoutingSnapshot(pinned=frozenset({"app.jobs.c"}), version=3, changed_at=AT),
    RoutingSnapshot(flipped=frozenset({"app.jobs.a"}), pinned=frozenset({"app.jobs.c"}), percent=12.34, version=4,
                    changed_at=AT),
    RoutingSnapshot(percent=0.01, version=5, changed_at=AT),
    RoutingSnapshot(rollout_all=True, percent=100.0, version=6, changed_at=AT),
    RoutingSnapshot(flipped=frozenset({LONG}), pinned=frozenset({LONG.replace("customers", "partners")}), version=7),
], ids=["nothing", "flips", "pin", "flips-pins-percent", "smallest-percent", "all", "long-names"])
def test_encode_then_decode_is_the_same_snapshot(snapshot: RoutingSnapshot) -> None:
    assert decode(rows(snapshot)) == snapshot


def test_no_rows_is_legacy() -> None:
    assert decode([]) == LEGACY


def test_rollout_at_100_percent_is_not_rollout_all() -> None:
    """`rollout --percent 100` and `rollout --all` differ: only --all covers job names added later by name."""
    decoded = decode(rows(RoutingSnapshot(percent=100.0, version=1)))
    assert decoded.percent == 100.0 and not decoded.rollout_all


def test_job_names_over_40_characters_get_distinct_short_keys() -> None:
    other = LONG.replace("customers", "partners")  # the same first 40 characters
    assert len(LONG) > NAME_LIMIT
    keys = {job_flag_name(LONG), job_flag_name(other)}
    assert len(keys) == 2
    assert all(len(k) <= NAME_LIMIT and k.startswith(JOB_FLAG_PREFIX) for k in keys)
    assert job_flag_name(LONG) == job_flag_name(LONG)  # stable: every process finds the same row


def test_rows_of_other_flags_are_ignored() -> None:
    snapshot = RoutingSnapshot(flipped=frozenset({"app.jobs.a"}), version=1)
    assert decode([*rows(snapshot), ("someone_elses_flag", encode_job("x.y", BackendName.POSTGRES))]) == snapshot
