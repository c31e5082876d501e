"""The two Redis keys of our own that a transfer keeps beside RQ's, and reading what an interrupted transfer holds.

Everything else RQ stores is named by RQ's classes; only these are spelled here, once.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import rq
from redis import Redis

from adapters.base import JobState, PendingJob
from adapters.rq_backend import decode

HOLDING = "migrator:transfer:holding"  # job id -> where it was claimed from (JSON), while moving to Postgres
LANDED = "migrator:transfer:landed"  # ids enqueued into RQ by a transfer whose Postgres side is not cleaned up


def held_jobs(connection: Redis, job_class: type[rq.job.Job], serializer: Any,
              trust: decode.Trust | None = None) -> list[PendingJob]:
    """Jobs an interrupted transfer claimed out of RQ and did not finish, as their hashes are now."""
    records = connection.hgetall(HOLDING)
    with connection.pipeline(transaction=False) as pipe:
        for job_id in records:
            pipe.hgetall(job_class.key_for(decode.text(job_id) or ""))
        hashes = pipe.execute()
    found = []
    for (job_id, record), raw in zip(records.items(), hashes):
        where = json.loads(record)
        state = JobState(where["state"])
        score = float(where["score"]) if where.get("score") else None
        run_at = datetime.fromtimestamp(score, timezone.utc) if state is JobState.SCHEDULED and score else None
        found.append(decode.pending_job(decode.text(job_id) or "", "", state, raw, serializer, run_at, trust))
    return found
