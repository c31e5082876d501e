"""Placing an RQ entry for a drain report, with plain values: where a job was found, refined by its hash fields,
and whether the worker holding it is alive."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from adapters.base import Place
from adapters.rq_backend.remaining import place_of
from adapters.rq_backend.workers import BUSY_SILENCE, judge

LIVE = frozenset({"worker-a"})
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("where", "fields", "expected"), [
    (Place.QUEUED, {"status": "queued"}, Place.QUEUED),
    (Place.QUEUED, {"status": "queued", "started_at": "2026-12-01T11:00:00Z"}, Place.RETRYING),
    (Place.SCHEDULED, {"status": "scheduled", "number_of_retries": "2"}, Place.RETRYING),
    (Place.SCHEDULED, {"status": "scheduled"}, Place.SCHEDULED),
    (Place.STARTED, {"worker_name": "worker-a"}, Place.STARTED),
    (Place.STARTED, {"worker_name": "worker-gone"}, Place.STALE),
    (Place.FAILED, {"retries_left": "1"}, Place.FAILED_RETRYABLE),
    (Place.FAILED, {"retries_left": "0"}, Place.FAILED),
    (Place.DEFERRED, {"status": "deferred", "started_at": "x"}, Place.DEFERRED),
], ids=lambda v: str(v) if isinstance(v, Place) else None)
def test_place_of_an_entry(where: Place, fields: dict[str, str | None], expected: Place) -> None:
    assert place_of(where, fields, LIVE) is expected


def test_a_worker_whose_process_is_gone_on_this_host_is_dead() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive, detail = judge("here", gone.pid, "busy", NOW, NOW, host="here")
    assert (alive, detail) == (False, f"process {gone.pid} is gone")
    assert judge("here", os.getpid(), "busy", NOW, NOW, host="here") == (True, "busy")


def test_a_busy_worker_silent_too_long_is_dead_an_idle_one_is_not() -> None:
    silent = NOW - BUSY_SILENCE - timedelta(seconds=1)
    alive, detail = judge("elsewhere", 1, "busy", silent, NOW, host="here")
    assert not alive and detail.startswith("busy but silent for")
    assert judge("elsewhere", 1, "idle", silent, NOW, host="here") == (True, "idle")
    assert judge("elsewhere", 1, "busy", NOW - timedelta(seconds=5), NOW, host="here") == (True, "busy")
