"""Where RQ keeps jobs (queue lists and registries, per state) and how to count and list them efficiently.

Keys always come from RQ's own classes. Counts are LLEN/ZCARD in one pipeline; anything per job name reads
job hashes in pipelined batches (HMGET of the few fields needed, HGETALL only to decode whole payloads).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

import rq
from redis import Redis
from rq.registry import BaseRegistry, ScheduledJobRegistry

from adapters.base import ANY_JOB, PENDING_STATES, PLACE_OF_STATE, JobState, PendingJob, Place, StateCount
from adapters.rq_backend import compat, decode

BATCH = 500  # ids per pipelined round trip: large enough to amortise latency, small enough to stay flat
SCAN_FIELDS = ("origin", *decode.COUNT_FIELDS)

try:  # rq-scheduler keeps its own schedule; its key is only trusted from the package itself
    from rq_scheduler import Scheduler as _RQScheduler  # type: ignore[import-not-found,unused-ignore]
    RQ_SCHEDULER_KEY: str | None = str(_RQScheduler.scheduled_jobs_key)
except ImportError:
    RQ_SCHEDULER_KEY = None


@dataclass(frozen=True, slots=True)
class Holder:
    """One Redis structure holding job ids in one state: a queue's list, or a sorted set (registry)."""

    queue: str  # "" for sets that span queues (RQ 3's rate limits, rq-scheduler): each job's origin says its queue
    state: JobState
    key: str
    source: rq.Queue | BaseRegistry | None  # what lists the ids; None: a plain sorted set of job ids
    place: Place | None = None  # where its jobs are, for a drain report (None: the place of `state`)

    @property
    def where(self) -> Place:
        return self.place or PLACE_OF_STATE[self.state]

    @property
    def is_list(self) -> bool:
        return isinstance(self.source, rq.Queue)


def queue_holders(queue: rq.Queue) -> list[Holder]:
    """Every place a job of `queue` can be, in the order a job moves through them."""
    sources: list[tuple[JobState, rq.Queue | BaseRegistry | None]] = [
        (JobState.QUEUED, queue), (JobState.QUEUED, compat.ready_registry(queue)),
        (JobState.SCHEDULED, queue.scheduled_job_registry), (JobState.DEFERRED, queue.deferred_job_registry),
        (JobState.STARTED, queue.started_job_registry), (JobState.FAILED, queue.failed_job_registry),
        (JobState.FINISHED, queue.finished_job_registry), (JobState.CANCELED, queue.canceled_job_registry)]
    return [Holder(queue.name, state, src.key, src) for state, src in sources if src is not None]


def rate_limited_holders(connection: Redis) -> list[Holder]:
    return [Holder("", JobState.QUEUED, key, None) for key in compat.rate_limited_keys(connection)]


def rq_scheduler_holders() -> list[Holder]:
    """rq-scheduler's own schedule, when the package is installed: jobs it will enqueue later."""
    if RQ_SCHEDULER_KEY is None:
        return []
    return [Holder("", JobState.SCHEDULED, RQ_SCHEDULER_KEY, None, Place.RQ_SCHEDULER)]


def sizes(connection: Redis, holders: Sequence[Holder]) -> list[int]:
    """LLEN or ZCARD of every holder, in one round trip."""
    with connection.pipeline(transaction=False) as pipe:
        for h in holders:
            pipe.llen(h.key) if h.is_list else pipe.zcard(h.key)
        return [int(n) for n in pipe.execute()]


def id_pages(connection: Redis, holder: Holder) -> Iterator[list[tuple[str, float | None]]]:
    """(job id, score) pages of a holder; the score is the run time of a scheduled job. Pages are read by
    offset while workers move jobs, so this is a listing, not a snapshot."""
    start = 0
    while True:
        page = _id_page(connection, holder, start)
        if not page:
            return
        yield page
        if len(page) < BATCH:
            return
        start += BATCH


def _id_page(connection: Redis, holder: Holder, start: int) -> list[tuple[str, float | None]]:
    src = holder.source
    if isinstance(src, rq.Queue):
        return [(i, None) for i in src.get_job_ids(start, BATCH)]
    if src is None or isinstance(src, ScheduledJobRegistry):  # members are plain job ids
        rows = cast(list[tuple[bytes, float]], connection.zrange(holder.key, start, start + BATCH - 1, withscores=True))
        return [(decode.text(m) or "", s) for m, s in rows]
    # other registries may store "job_id:execution_id" members: let RQ parse them; cleanup would mutate
    return [(i, None) for i in src.get_job_ids(start, start + BATCH - 1, cleanup=False)]


def fetch_fields(connection: Redis, job_class: type[rq.job.Job], ids: Sequence[str],
                 fields: Sequence[str] | None) -> list[dict[str, Any] | None]:
    """Hash fields of many jobs in one round trip (all fields when `fields` is None); None for a gone hash."""
    with connection.pipeline(transaction=False) as pipe:
        for job_id in ids:
            key = job_class.key_for(job_id)
            pipe.hgetall(key) if fields is None else pipe.hmget(key, list(fields))
        replies = pipe.execute()
    if fields is None:
        return [{decode.text(k) or "": v for k, v in r.items()} if r else None for r in replies]
    return [dict(zip(fields, r)) if any(v is not None for v in r) else None for r in replies]


def scan(connection: Redis, holder: Holder, job_class: type[rq.job.Job],
         fields: Sequence[str] | None) -> Iterator[tuple[list[tuple[str, float | None]], list[dict[str, Any] | None]]]:
    """The one way through a holder: pages of (id, score) with the asked hash fields of each job (all fields when
    `fields` is None), one pipelined round trip per page."""
    for page in id_pages(connection, holder):
        yield page, fetch_fields(connection, job_class, [i for i, _ in page], fields)


def fast_counts(connection: Redis, holders: Sequence[Holder], job_class: type[rq.job.Job]) -> list[StateCount]:
    """Counts per queue and state from sizes alone, except that scheduled jobs are read (one small HMGET each)
    to tell a retry waiting for its interval from a job scheduled by the app."""
    tally: Counter[tuple[str, str, JobState]] = Counter()
    for holder, size in zip(holders, sizes(connection, holders)):
        if size and (holder.state is JobState.SCHEDULED or not holder.queue):
            tally.update(_scan(connection, holder, job_class, None, None, per_job=False))
        elif size:
            tally[(holder.queue, ANY_JOB, holder.state)] += size
    return _as_counts(tally)


def scan_counts(connection: Redis, holders: Sequence[Holder], job_class: type[rq.job.Job], serializer: Any,
                job_name: str | None, queue: str | None = None) -> list[StateCount]:
    """Counts per queue, job name and state, reading the job name of every listed job."""
    tally: Counter[tuple[str, str, JobState]] = Counter()
    for holder in holders:
        tally.update(_scan(connection, holder, job_class, serializer, job_name, per_job=True, queue=queue))
    return _as_counts(tally)


def _scan(connection: Redis, holder: Holder, job_class: type[rq.job.Job], serializer: Any, job_name: str | None,
          per_job: bool, queue: str | None = None) -> Counter[tuple[str, str, JobState]]:
    tally: Counter[tuple[str, str, JobState]] = Counter()
    fields = SCAN_FIELDS if per_job else ("origin", "status", "started_at", "number_of_retries")
    for _, rows in scan(connection, holder, job_class, fields):
        for row in rows:
            row = row or {}
            s = {k: decode.text(v) for k, v in row.items() if k != "data"}
            name = decode.func_name(row.get("data"), serializer) if per_job else ANY_JOB
            where = holder.queue or s.get("origin") or ""
            if (job_name is None or name == job_name) and (queue is None or where == queue):
                state = decode.waiting_state(holder.state, s.get("status"), s.get("started_at"),
                                             s.get("number_of_retries"))
                tally[(where, name, state)] += 1
    return tally


def _as_counts(tally: Counter[tuple[str, str, JobState]]) -> list[StateCount]:
    return [StateCount(q, f, s, n) for (q, f, s), n in sorted(tally.items()) if n]


def pending(connection: Redis, holders: Iterable[Holder], job_class: type[rq.job.Job], serializer: Any,
            job_name: str | None, queue: str | None, trust: decode.Trust | None = None) -> Iterator[PendingJob]:
    """Every not-finished job of the holders, decoded (never run, never imported, but for the pickles of the job
    names `trust` accepts: pickle_payloads, see decode.decode_call)."""
    for holder in holders:
        if holder.state not in PENDING_STATES:
            continue
        for page, hashes in scan(connection, holder, job_class, decode.PENDING_FIELDS):
            for (job_id, score), raw in zip(page, hashes):
                run_at = _run_at(holder, score)
                job = decode.pending_job(job_id, holder.queue, holder.state, raw, serializer, run_at, trust)
                if (job_name is None or job.spec.job_name == job_name) and (queue is None or job.spec.queue == queue):
                    yield job


def _run_at(holder: Holder, score: float | None) -> datetime | None:
    if holder.state is not JobState.SCHEDULED or score is None:
        return None
    return datetime.fromtimestamp(score, timezone.utc)
