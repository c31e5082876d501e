"""Jobs whose enqueue is in doubt: the connection broke after the job was sent, so the backend may have it (a
commit whose answer was lost when the server crashed) or not.

Falling back at once would risk two copies, one on each backend, both run. So the fallback copy is held (scheduled
`hold` seconds ahead) and remembered; when the breaker's probe finds the first backend back, each held job is
settled: if the first backend has it, the held copy is removed and the job runs there, once; if not, the held
copy is the job and runs when its hold ends. Should the outage outlast the hold, the copy that has not started
is removed (the held one ran: the first backend's is cancelled). What remains: an app process that dies in the
outage leaves its held copies unsettled (they run when due, and the first backend's copy too, if it committed).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from adapters.base import BackendName, BackendUnavailable, JobBackend, JobSpec

log = logging.getLogger("migrator.router")
HOLD_SECONDS = 30.0  # how long a fallback copy waits for the first backend to say whether it has the job
SETTLE_ATTEMPTS, SETTLE_PAUSE = 20, 0.5  # a settle reads again for up to 10 s while the backend is shaky


def held_until(run_at: datetime | None, hold: float) -> datetime:
    """When a held copy may run: its own time, but not before the hold ends."""
    end = datetime.now(timezone.utc) + timedelta(seconds=hold)
    return end if run_at is None or run_at < end else run_at


class Doubts:
    """The held jobs of one router, per backend whose answer is awaited (the first backend)."""

    def __init__(self, backends: Mapping[BackendName, JobBackend], hold_seconds: float = HOLD_SECONDS) -> None:
        self.backends = backends
        self.hold_seconds = hold_seconds
        self._held: dict[BackendName, dict[str, BackendName]] = {}  # first backend -> job id -> where held
        self._lock = threading.Lock()

    def held(self, spec: JobSpec) -> JobSpec:
        """The copy to hold: `spec`, not run before the hold ends."""
        return replace(spec, run_at=held_until(spec.run_at, self.hold_seconds))

    def hold(self, first: BackendName, job_id: str, held_on: BackendName) -> None:
        with self._lock:
            self._held.setdefault(first, {})[job_id] = held_on

    def pending(self) -> int:
        with self._lock:
            return sum(len(ids) for ids in self._held.values())

    def settle(self, first: BackendName, attempts: int = SETTLE_ATTEMPTS, pause: float = SETTLE_PAUSE) -> None:
        """`first` answers again: keep exactly one copy of each job held for it (called by its breaker's probe).
        Right after a restart a pool still hands out connections the crash broke: a failed read is tried again."""
        with self._lock:
            held = self._held.pop(first, {})
        for attempt in range(attempts):
            unsettled = {}
            for job_id, held_on in held.items():
                try:
                    self._settle_one(first, job_id, held_on)
                except BackendUnavailable:
                    unsettled[job_id] = held_on
            held = unsettled
            if not held:
                return
            time.sleep(pause)
        log.warning("%d enqueues in doubt on %s could not be settled (it failed again): their held copies run when "
                    "their hold ends; the next recovery tries again", len(held), first)
        with self._lock:
            self._held.setdefault(first, {}).update(held)

    def _settle_one(self, first: BackendName, job_id: str, held_on: BackendName) -> None:
        if self.backends[first].fetch_job(job_id) is None:
            log.info("job %s never reached %s: its copy held on %s is the job", job_id, first, held_on)
            return
        if self.backends[held_on].remove_pending(job_id):
            log.info("job %s reached %s after all: its copy held on %s is removed", job_id, first, held_on)
        elif self.backends[first].remove_pending(job_id):
            log.warning("job %s reached %s, but its copy held on %s had started (the outage outlasted the hold): "
                        "the one on %s is removed", job_id, first, held_on, first)
        else:
            log.warning("job %s ran on both %s and %s: the outage outlasted the hold and both copies started",
                        job_id, first, held_on)
