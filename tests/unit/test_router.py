"""decide(): precedence, and the percentage's determinism, uniformity and monotonicity, on plain values."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from adapters.base import BackendName
from migrator.routing import decide as router
from migrator.routing.decide import decide
from migrator.routing.snapshot import RoutingSnapshot

NAMES = [f"app.jobs.module_{i % 37}.job_{i}" for i in range(1000)]


def test_nothing_set_routes_legacy() -> None:
    assert decide("app.jobs.a", RoutingSnapshot()) == router.DEFAULT
    assert router.DEFAULT.backend is BackendName.RQ


def test_pin_beats_flip_and_every_rollout() -> None:
    s = RoutingSnapshot(flipped=frozenset({"a"}), pinned=frozenset({"a"}), rollout_all=True, percent=100)
    assert decide("a", s) == router.PINNED


def test_flip_beats_rollout_off() -> None:
    s = RoutingSnapshot(flipped=frozenset({"a"}))
    assert decide("a", s).backend is BackendName.POSTGRES
    assert decide("b", s).backend is BackendName.RQ


def test_rollout_all_routes_every_unpinned_job_new() -> None:
    s = RoutingSnapshot(pinned=frozenset({"p"}), rollout_all=True)
    assert all(decide(n, s) == router.ROLLOUT_ALL for n in NAMES)
    assert decide("p", s) == router.PINNED


def test_percentage_reason_names_inclusion() -> None:
    s = RoutingSnapshot(percent=50)
    reasons = {decide(n, s) for n in NAMES}
    assert reasons == {router.IN_PERCENT, router.OUT_OF_PERCENT}


def test_half_of_a_thousand_names_is_roughly_half() -> None:
    s = RoutingSnapshot(percent=50)
    new = sum(decide(n, s).backend is BackendName.POSTGRES for n in NAMES)
    assert 450 <= new <= 550


def test_ten_percent_is_about_ten_not_eleven() -> None:
    # flipper's bucketer (score <= pct over 100 buckets) would include about 11% here
    s = RoutingSnapshot(percent=10)
    new = sum(decide(n, s).backend is BackendName.POSTGRES for n in NAMES)
    assert 70 <= new <= 130
    assert sum(router.bucket(f"job{i}") < 1000 for i in range(20000)) in range(1900, 2100)


def test_zero_and_ninety_nine_percent_are_exact_edges() -> None:
    assert not any(decide(n, RoutingSnapshot(percent=0)).backend is BackendName.POSTGRES for n in NAMES)
    # 99% must leave about 1% behind (flipper's 100-bucket check enables everything at 99%)
    left = sum(decide(n, RoutingSnapshot(percent=99)).backend is BackendName.RQ for n in NAMES)
    assert 1 <= left <= 30
    assert all(decide(n, RoutingSnapshot(percent=100)).backend is BackendName.POSTGRES for n in NAMES)


def test_raising_the_percentage_never_sends_a_job_back() -> None:
    previous: set[str] = set()
    for step in range(0, 10001, 25):
        included = {n for n in NAMES if decide(n, RoutingSnapshot(percent=step / 100)).backend is BackendName.POSTGRES}
        assert previous <= included, f"a job left the rollout at {step / 100}%"
        previous = included
    assert previous == set(NAMES)


def test_bucket_is_the_same_in_another_process() -> None:
    # hash() is salted per process; the bucket must not be, or processes would disagree on routing
    code = "from migrator.routing import decide as router; print(','.join(str(router.bucket(f'app.jobs.j{i}')) for i in range(50)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.strip()
    assert out == ",".join(str(router.bucket(f"app.jobs.j{i}")) for i in range(50))


def test_snapshot_round_trips_through_json() -> None:
    s = RoutingSnapshot(frozenset({"a"}), frozenset({"b"}), False, 12.5, 7)
    assert RoutingSnapshot.from_json(s.to_json()) == s


def test_with_job_moves_a_job_between_flipped_and_pinned() -> None:
    s = RoutingSnapshot().with_job("a", BackendName.POSTGRES).with_job("a", BackendName.RQ)
    assert s.pinned == {"a"} and not s.flipped
    assert s.with_job("a", None) == RoutingSnapshot()
