"""`migrator canary`: enqueue a no-op job on the new backend and wait until a worker has performed it."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from adapters.base import JobBackend, JobSpec, JobState

CANARY_FUNC = "adapters.pg_backend.canary.noop"


@dataclass(frozen=True, slots=True)
class CanaryResult:
    """What the canary saw: performed or not, in how long, and why not."""

    ok: bool
    job_id: str
    state: str
    seconds: float
    live_workers: int
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "job_id": self.job_id, "state": self.state, "seconds": round(self.seconds, 3),
                "live_workers": self.live_workers, "detail": self.detail}


def run_canary(backend: JobBackend, queue: str = "default", timeout: float = 30.0) -> CanaryResult:
    """Enqueue the canary and wait; the job is removed afterwards unless it failed (kept for inspection)."""
    token = uuid.uuid4().hex
    job_id = f"canary-{token}"
    started = time.monotonic()
    backend.enqueue(JobSpec(CANARY_FUNC, (token,), queue=queue, job_id=job_id, timeout=max(1, int(timeout)),
                            result_ttl=60, description="migrator canary"))
    while True:
        info = backend.fetch_job(job_id)
        if info and info.state in (JobState.FINISHED, JobState.FAILED, JobState.RETRYING):
            break
        if time.monotonic() - started >= timeout:
            break
        time.sleep(0.02)
    seconds = time.monotonic() - started
    live = [w for w in backend.workers() if w.alive and queue in w.queues]
    state = info.state.value if info else "missing"
    if info and info.state == JobState.FINISHED:
        return CanaryResult(True, job_id, state, seconds, len(live), f"performed by {info.result}")
    if info and info.state in (JobState.FAILED, JobState.RETRYING):
        detail = f"the canary job failed: {info.error_type}: {info.error_message}"
    elif not live:
        detail = f"no live migrator worker serves queue {queue!r}: start one with `migrator worker --queues {queue}`"
    else:
        detail = f"{len(live)} live worker(s) serve {queue!r} but none ran the canary within {timeout:.0f}s (busy?)"
    if info and info.state in (JobState.QUEUED, JobState.SCHEDULED):
        backend.remove_pending(job_id)  # do not leave a canary behind to run later
    return CanaryResult(False, job_id, state, seconds, len(live), detail)
