"""What the chaos soak (bench/soak.py) found, pinned as small deterministic tests. Each xfail is a product bug
still open: strict, so the fix turns it into a failure that says to drop the mark."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import redis
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from adapters.base import JobSpec
from adapters.rq_backend import RQBackend
from tests import jobs


def test_a_scheduled_job_enqueued_in_a_pipeline_is_not_in_the_schedule_before_the_pipeline_runs(rqb: RQBackend,
                                                                                              conn: redis.Redis):
    """RQ 2.x's ScheduledJobRegistry.schedule() ZADDs on its own connection, not the pipeline it is given: the id
    was in the schedule before the job hash existed, and RQ's scheduler dropped it (the soak lost jobs so). The RQ
    adapter now schedules on the pipeline (adapters/rq_backend/compat.py schedule)."""
    spec = JobSpec(f"{jobs.noop.__module__}.noop", (), job_id="due", run_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    registry = ScheduledJobRegistry("default", connection=conn)
    with conn.pipeline() as pipe:  # what transfer's land (inside its MULTI) and RQBackend.enqueue_many do
        rqb._enqueue_batch([spec], pipe, {})
        in_schedule = conn.zscore(registry.key, "due") is not None
        hash_exists = conn.exists(Job("due", connection=conn).key)
        pipe.execute()
    assert not (in_schedule and not hash_exists), "the schedule lists a job whose hash does not exist yet"
