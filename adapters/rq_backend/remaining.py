"""What remains in RQ, for a drain check: every list and registry of every queue (plus rate-limit sets,
rq-scheduler's schedule, the intermediate lists and what an interrupted transfer holds), sized for the verdict or
read job by job for the per-job breakdown; started entries judged live or stale against the workers alive."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import rq
from redis import Redis

from adapters.base import (ANY_JOB, MARK_PREFIX, Arrival, BackendName, Inventory, JobState, Place, Remaining, Watch,
                           WorkerInfo)
from adapters.rq_backend import decode, inventory, maintenance, workers
from adapters.rq_backend.holding import held_jobs
from adapters.rq_backend.inventory import Holder

RQ = BackendName.RQ
FIELDS = ("origin", "data", "status", "started_at", "number_of_retries", "created_at", "enqueued_at",
          "retries_left", "worker_name", "meta")
# Statuses of an id left in the intermediate list after its job moved on: counted where it is now.
MOVED_ON = frozenset({"started", "finished", "failed", "stopped", "canceled"})
FAILED_READ_LIMIT = 50_000  # above this, the sizes-only verdict lists failed jobs without reading retries_left
INTERMEDIATE_LIMIT = 10_000  # the intermediate list holds jobs in flight: a handful unless workers died
# Pending jobs up to which the report is broken down per job name: reading 100,000 jobs takes a few seconds;
# above this the verdict comes from sizes alone and stays under a second at any depth.
BREAKDOWN_LIMIT = 200_000


@dataclass(frozen=True, slots=True)
class Source:
    """What an inventory reads from: the app's Redis and RQ classes, and a queue by name."""

    connection: Redis
    queue: Callable[[str], rq.Queue]
    job_class: type[rq.job.Job]
    serializer: Any


@dataclass
class Tally:
    """What one inventory found so far (mutable while reading; frozen into an Inventory at the end)."""

    per_job: bool
    job_name: str | None
    live: frozenset[str]  # names of the RQ workers judged alive
    watch: Watch | None
    counts: Counter[tuple[str, str, Place]] = field(default_factory=Counter)
    scheduled: Counter[str] = field(default_factory=Counter)  # sizes of RQ's scheduled registries, per queue
    started: set[str] = field(default_factory=set)  # ids in started registries, read before the intermediate lists
    arrivals: list[Arrival] = field(default_factory=list)

    def rows(self) -> list[Remaining]:
        return [Remaining(RQ, q, j, p, n) for (q, j, p), n in sorted(self.counts.items()) if n]


def take_inventory(src: Source, names: Sequence[str], found: Sequence[WorkerInfo], job_name: str | None,
                   per_job: bool | None, watch: Watch | None) -> Inventory:
    """Everything of `job_name` (or of every job) left in these queues, broken down per job name when asked or
    affordable (always for one job name)."""
    holders = _holders(src, names)
    if job_name is not None:
        per_job = True
    elif per_job is None:
        per_job = _pending_size(src, holders) <= BREAKDOWN_LIMIT
    tally = Tally(per_job, job_name, frozenset(w.name for w in found if w.alive), watch)
    _tally_holders(src, holders, tally)
    for name in names:
        _read_intermediate(src, name, tally)
    waiting = sorted(q for q, n in tally.scheduled.items() if n)
    gaps = _scheduler_gaps(src.connection, waiting) if waiting else []
    rows = tally.rows() + _in_transfer(src, job_name)
    abandoned = sorted({r.queue for r in rows if r.place is Place.STALE and r.count})
    left = maintenance.left_locks(src.connection, abandoned) if abandoned else []
    return Inventory(RQ, tuple(rows), tuple(found), per_job, tuple(tally.arrivals),
                     tuple((q, tally.scheduled[q]) for q in gaps), tuple((x.queue, x.expires_in) for x in left))


def _holders(src: Source, names: Sequence[str]) -> list[Holder]:
    """Every place a job can wait in RQ, from RQ's own classes (the intermediate list is read separately)."""
    found = [h for name in names for h in inventory.queue_holders(src.queue(name))]
    return found + inventory.rate_limited_holders(src.connection) + inventory.rq_scheduler_holders()


def _pending_size(src: Source, holders: Sequence[Holder]) -> int:
    """Jobs waiting in RQ by sizes alone: what a per-job breakdown would have to read."""
    done = {Place.FINISHED, Place.CANCELED}
    return sum(n for h, n in zip(holders, inventory.sizes(src.connection, holders)) if h.where not in done)


def _tally_holders(src: Source, holders: Sequence[Holder], tally: Tally) -> None:
    """Sizes where they suffice, per-job reads where they do not."""
    for holder, size in zip(holders, inventory.sizes(src.connection, holders)):
        if not size:
            continue
        if holder.where is Place.SCHEDULED and holder.queue:
            tally.scheduled[holder.queue] += size
        if tally.per_job or _must_read(holder, size):
            _read_holder(src, holder, tally)
        else:
            tally.counts[(holder.queue, ANY_JOB, holder.where)] += size


def _must_read(holder: Holder, size: int) -> bool:
    """Started entries are few and must be judged; failed ones say if they will retry; shared sets need origin."""
    if holder.where is Place.STARTED or not holder.queue:
        return True
    return holder.where is Place.FAILED and size <= FAILED_READ_LIMIT


def _read_holder(src: Source, holder: Holder, tally: Tally) -> None:
    for page, rows in inventory.scan(src.connection, holder, src.job_class, FIELDS):
        if holder.where is Place.STARTED:
            tally.started.update(job_id for job_id, _ in page)
        for row in rows:
            _count(src, holder.queue, holder.where, row, tally)


def _read_intermediate(src: Source, name: str, tally: Tally) -> None:
    """Jobs an RQ worker popped (BLMOVE) but did not register as started: a worker that dies right there
    leaves them in this list, where only RQ's maintenance finds them."""
    key = src.queue(name).intermediate_queue_key
    listed = (decode.text(i) or "" for i in src.connection.lrange(key, 0, INTERMEDIATE_LIMIT - 1))
    # A worker may be killed after registering the job as started but before its status says so (RQ 3):
    # the started registry has it then, counted once, there.
    ids = [i for i in listed if i not in tally.started]
    for start in range(0, len(ids), inventory.BATCH):
        batch = ids[start:start + inventory.BATCH]
        for row in inventory.fetch_fields(src.connection, src.job_class, batch, FIELDS):
            if row is not None and decode.text(row.get("status")) not in MOVED_ON:
                _count(src, name, Place.INTERMEDIATE, row, tally)


def _count(src: Source, queue: str, where: Place, row: dict[str, object] | None, tally: Tally) -> None:
    fields = {k: decode.text(v) if isinstance(v, (bytes, str)) else None for k, v in (row or {}).items()
              if k not in ("data", "meta")}
    need_name = tally.per_job or tally.job_name is not None
    data = (row or {}).get("data")
    name = decode.func_name(data if isinstance(data, bytes) else None, src.serializer) if need_name else ANY_JOB
    if tally.job_name is not None and name != tally.job_name:
        return
    place = place_of(where, fields, tally.live)
    tally.counts[(queue or fields.get("origin") or "", name if tally.per_job else ANY_JOB, place)] += 1
    if tally.watch is not None and tally.per_job and tally.watch(name):
        at = decode.parse_time(fields.get("created_at")) or decode.parse_time(fields.get("enqueued_at"))
        if at is not None:
            tally.arrivals.append(Arrival(name, at, _marks((row or {}).get("meta"), src.serializer)))


def _marks(raw: object, serializer: Any) -> tuple[str, ...]:
    """The toolkit's own meta keys on a job (read only for watched job names: meta is decoded with the app's
    serializer, which costs more than the rest of the row)."""
    meta, _ = decode.decode_meta(raw if isinstance(raw, bytes) else None, serializer)
    return tuple(sorted(k for k in meta if isinstance(k, str) and k.startswith(MARK_PREFIX)))


def place_of(where: Place, f: dict[str, str | None], live: frozenset[str]) -> Place:
    """Refine where a job was found by what its hash says: a retry waiting in a queue or schedule, a started job
    of a dead worker, a failed job with retries left."""
    if where in (Place.QUEUED, Place.SCHEDULED):
        state = decode.waiting_state(JobState(where.value), f.get("status"), f.get("started_at"),
                                     f.get("number_of_retries"))
        return Place.RETRYING if state is JobState.RETRYING else where
    if where is Place.STARTED:
        return Place.STARTED if f.get("worker_name") in live else Place.STALE
    if where is Place.FAILED and int(f.get("retries_left") or 0) > 0:
        return Place.FAILED_RETRYABLE
    return where


def _scheduler_gaps(connection: Redis, queues: Sequence[str]) -> list[str]:
    """Queues with scheduled jobs whose scheduler lock nobody holds: no RQ scheduler would ever enqueue them."""
    holders = workers.scheduler_holders(connection, set(queues))
    return sorted(q for q, holder in holders.items() if holder is None)


def _in_transfer(src: Source, job_name: str | None) -> list[Remaining]:
    """Jobs an interrupted transfer took out of RQ and has not landed: pending until a transfer finishes."""
    held = held_jobs(src.connection, src.job_class, src.serializer)
    counts = Counter((j.spec.queue, j.spec.job_name) for j in held if job_name is None or j.spec.job_name == job_name)
    return [Remaining(RQ, q, f, Place.IN_TRANSFER, n) for (q, f), n in sorted(counts.items())]
