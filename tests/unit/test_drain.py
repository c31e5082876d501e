"""The pure parts of drain-check with plain values: flip dating, stray grouping, the wait loop's quiet period."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from adapters.base import BackendName
from migrator.drain import wait as drain
from migrator.drain.values import DrainReport, Place, Remaining, SideReport, Stray
from migrator.routing.history import Entry
from migrator.routing.snapshot import LEGACY, RoutingSnapshot
from migrator.drain.strays import RoutingTimeline, find_strays

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
JOB = "app.jobs.send_email"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def entry(i: int, seconds: float, before: RoutingSnapshot, after: RoutingSnapshot) -> Entry:
    return Entry(i, at(seconds), "me", "flip", JOB, {}, before, after)


def test_timeline_dates_the_last_uninterrupted_flip() -> None:
    flipped = LEGACY.with_job(JOB, BackendName.POSTGRES)
    entries = [entry(1, 10, LEGACY, flipped), entry(2, 20, flipped, LEGACY), entry(3, 30, LEGACY, flipped)]
    timeline = RoutingTimeline(entries[::-1], flipped)  # the log comes newest first
    assert timeline.since(JOB) == at(30)
    assert timeline.since("app.jobs.other") is None
    assert RoutingTimeline(entries, LEGACY).since(JOB) is None  # routes legacy now: nothing can stray


def test_timeline_counts_a_rollout_as_routing_new() -> None:
    everything = RoutingSnapshot(rollout_all=True, percent=100.0)
    timeline = RoutingTimeline([entry(1, 5, LEGACY, everything)], everything)
    assert timeline.since("app.jobs.any") == at(5)


def test_find_strays_groups_arrivals_after_the_bound() -> None:
    since = {JOB: at(100)}.get
    arrivals = [(JOB, at(90)), (JOB, at(101)), (JOB, at(110)), (JOB, at(105)), ("app.jobs.other", at(200))]
    assert find_strays(arrivals, since, timedelta(seconds=2)) == [Stray(JOB, 2, at(105), at(110), at(100))]


def report(pending: int, strays: tuple[Stray, ...] = ()) -> DrainReport:
    rows = (Remaining(BackendName.RQ, "default", JOB, Place.QUEUED, pending),)
    return DrainReport(None, (SideReport(BackendName.RQ, rows, (), strays=strays),), T0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.01)


def test_wait_needs_the_whole_quiet_period_and_restarts_it_on_a_new_job() -> None:
    clock = Clock()
    answers = iter([3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    seen: list[float] = []
    outcome = drain.wait_until_drained(lambda: report(next(answers)), timeout=100, quiet_period=1.0, poll=0.5,
                                       on_poll=lambda r, waited, quiet: seen.append(quiet), clock=clock,
                                       sleep=clock.sleep)
    assert outcome.ok and outcome.quiet_for >= 1.0
    assert seen[:4] == [0.0, 0.0, 0.0, 0.0] and seen[-1] >= 1.0  # the job at poll 3 reset the quiet period


def test_wait_times_out_not_ok() -> None:
    clock = Clock()
    outcome = drain.wait_until_drained(lambda: report(1), timeout=3, quiet_period=0, clock=clock, sleep=clock.sleep)
    assert not outcome.ok and outcome.waited >= 3 and outcome.report.pending


def test_strays_fail_the_gate_even_when_drained() -> None:
    stray = Stray(JOB, 1, at(1), at(1), at(0))
    assert report(0).ok and report(0, (stray,)).drained and not report(0, (stray,)).ok
