"""Waiting for a drain: poll a check until it passes and keeps passing for a quiet period, or give up."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from migrator.drain.values import DrainReport


@dataclass(frozen=True, slots=True)
class WaitOutcome:
    """How a wait for a drain ended: the last report, and whether it stayed drained for the quiet period."""

    report: DrainReport
    ok: bool  # drained (and no stray enqueues) without a break for the whole quiet period
    waited: float
    quiet_for: float


Progress = Callable[[DrainReport, float, float], None]  # (last report, seconds waited, seconds quiet)


def wait_until_drained(check: Callable[[], DrainReport], timeout: float, quiet_period: float, *,
                       poll: float = 0.5, on_poll: Progress | None = None,
                       clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], None] = time.sleep) -> WaitOutcome:
    """Poll until a check passes and keeps passing for `quiet_period` seconds (a job arriving in between
    restarts the quiet period), or until `timeout`."""
    start = clock()
    quiet_since: float | None = None
    while True:
        report = check()
        t = clock()
        quiet_since = (quiet_since if quiet_since is not None else t) if report.ok else None
        quiet = t - quiet_since if quiet_since is not None else 0.0
        if on_poll is not None:
            on_poll(report, t - start, quiet)
        if report.ok and quiet >= quiet_period:
            return WaitOutcome(report, True, t - start, quiet)
        if t - start >= timeout:
            return WaitOutcome(report, False, t - start, quiet)
        sleep(max(0.0, min(poll, timeout - (t - start), quiet_period - quiet if report.ok else poll)))
