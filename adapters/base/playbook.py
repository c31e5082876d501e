"""Playbook runs: where a rollout plan's progress lives, so that a run killed at any instant resumes."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from adapters.base.errors import BackendUnavailable, SchemaMissing

__all__ = ["LockHolder", "PlaybookRunRow", "PlaybookState", "PlaybookStepRow", "RunStats", "RunStatsSource"]


# -- playbook runs: where a rollout plan's progress lives, so that a run killed at any instant resumes ----------
@dataclass(frozen=True, slots=True)
class PlaybookRunRow:
    """One run of a playbook: `step` is the 1-based index of the step to run next (or being run)."""

    id: int
    playbook: str
    fingerprint: str
    status: str  # running | stopped | done | aborted
    step: int
    message: str
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlaybookStepRow:
    """One step a run reached: its intent is written before it acts, its outcome after."""

    run_id: int
    index: int
    kind: str
    status: str  # started | done | failed | rolled-back
    intent: Mapping[str, Any]
    outcome: Mapping[str, Any]
    started_at: datetime
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LockHolder:
    """The process running a playbook now."""

    host: str
    pid: int
    since: datetime


@dataclass(frozen=True, slots=True)
class RunStats:
    """Runs of some job names on a backend since a time: how they ended, and the wait from enqueue to start."""

    started: int
    finished: int
    failed: int
    p95_wait: float | None  # seconds; None when nothing started

    def to_json(self) -> dict[str, Any]:
        return {"started": self.started, "finished": self.finished, "failed": self.failed, "p95_wait": self.p95_wait}


class RunStatsSource(Protocol):
    def run_stats(self, since: datetime, job_names: Sequence[str] | None = None) -> RunStats:
        """Jobs (of `job_names`, or all) that started, finished or failed since `since`."""


class PlaybookState(Protocol):
    """Playbook runs and their steps, and the lock that lets one runner at a time drive a playbook.
    Errors: BackendUnavailable when unreachable, SchemaMissing before `db migrate`."""

    location: str

    def try_lock(self, playbook: str) -> LockHolder | None:
        """Take the playbook's lock on a session of its own, held until release_lock() or until this process
        ends; None when taken, else who holds it."""

    def release_lock(self, playbook: str) -> None: ...

    def holder(self, playbook: str) -> LockHolder | None: ...

    def latest_run(self, playbook: str) -> PlaybookRunRow | None: ...

    def active_runs(self) -> list[PlaybookRunRow]:
        """The newest run of each playbook that is running or stopped."""

    def start_run(self, playbook: str, fingerprint: str) -> PlaybookRunRow: ...

    def set_run(self, run_id: int, status: str, step: int, message: str = "") -> None: ...

    def steps(self, run_id: int) -> list[PlaybookStepRow]: ...

    def save_step(self, run_id: int, index: int, kind: str, status: str, intent: Mapping[str, Any],
                  outcome: Mapping[str, Any], advance_to: int | None = None) -> None:
        """Write one step; with `advance_to`, the run's next step moves in the same statement."""

    def close(self) -> None: ...


