"""The legacy side of a drain check: every list and registry of every RQ queue, sized for the verdict or read job
by job for the per-job breakdown; started entries are judged live or stale against the workers that are alive."""
from __future__ import annotations

import os
import socket
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rq.defaults import DEFAULT_JOB_MONITORING_INTERVAL

from adapters.base import BackendName, JobState
from adapters.rq_backend import RQBackend, RQWorker
from adapters.rq_backend import decode, inventory, workers
from migrator.drain.values import ANY_JOB, Place, Remaining, WorkerView
from migrator.drain.strays import RoutedSince

try:  # rq-scheduler keeps its own schedule; its key is only trusted from the package itself
    from rq_scheduler import Scheduler as _RQScheduler  # type: ignore[import-not-found,unused-ignore]
    RQ_SCHEDULER_KEY: str | None = str(_RQScheduler.scheduled_jobs_key)
except ImportError:
    RQ_SCHEDULER_KEY = None

RQ = BackendName.RQ
PLACES = {JobState.QUEUED: Place.QUEUED, JobState.SCHEDULED: Place.SCHEDULED, JobState.DEFERRED: Place.DEFERRED,
          JobState.STARTED: Place.STARTED, JobState.FAILED: Place.FAILED, JobState.FINISHED: Place.FINISHED,
          JobState.CANCELED: Place.CANCELED}
FIELDS = ("origin", "data", "status", "started_at", "number_of_retries", "created_at", "enqueued_at",
          "retries_left", "worker_name")
# Statuses of an id left in the intermediate list after its job moved on: counted where it is now.
MOVED_ON = frozenset({"started", "finished", "failed", "stopped", "canceled"})
FAILED_READ_LIMIT = 50_000  # above this, the sizes-only verdict lists failed jobs without reading retries_left
INTERMEDIATE_LIMIT = 10_000  # the intermediate list holds jobs in flight: a handful unless workers died
# A busy RQ worker heartbeats every job monitoring interval; twice that plus margin without one = dead.
BUSY_SILENCE = timedelta(seconds=2 * DEFAULT_JOB_MONITORING_INTERVAL + 60)


@dataclass(frozen=True, slots=True)
class Slot:
    """One Redis structure to inspect and the place its jobs are in; queue "" = read each job's origin."""

    holder: inventory.Holder
    place: Place


@dataclass
class Tally:
    per_job: bool
    job_name: str | None
    live: frozenset[str]  # names of the RQ workers judged alive
    watch: RoutedSince | None
    counts: Counter[tuple[str, str, Place]] = field(default_factory=Counter)
    scheduled: Counter[str] = field(default_factory=Counter)  # sizes of RQ's scheduled registries, per queue
    started: set[str] = field(default_factory=set)  # ids in started registries, read before the intermediate lists
    arrivals: list[tuple[str, datetime]] = field(default_factory=list)

    def rows(self) -> list[Remaining]:
        return [Remaining(RQ, q, j, p, n) for (q, j, p), n in sorted(self.counts.items()) if n]


def judge_worker(worker: RQWorker, now: datetime, host: str = socket.gethostname()) -> tuple[bool, str]:
    """Alive or not, and why. RQ keeps a SIGKILLed worker registered until its key expires (minutes), so a
    worker on this host whose process is gone, or a busy one silent for too long, is dead already."""
    if worker.hostname == host and worker.pid and not _pid_alive(worker.pid):
        return False, f"process {worker.pid} is gone"
    silent = now - worker.last_heartbeat if worker.last_heartbeat else None
    if worker.state == "busy" and silent is not None and silent > BUSY_SILENCE:
        return False, f"busy but silent for {int(silent.total_seconds())}s"
    return True, worker.state


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def worker_views(found: Sequence[RQWorker], now: datetime) -> list[WorkerView]:
    views = []
    for w in found:
        alive, detail = judge_worker(w, now)
        views.append(WorkerView(RQ, w.name, w.queues, alive, detail, w.runs_scheduler))
    return views


def slots(backend: RQBackend, names: Iterable[str]) -> list[Slot]:
    """Every place a job can wait in RQ, from RQ's own classes (the intermediate list is read separately)."""
    found = [Slot(h, PLACES[h.state]) for name in names for h in inventory.queue_holders(backend.queue(name))]
    found += [Slot(h, Place.QUEUED) for h in inventory.rate_limited_holders(backend.connection)]
    if RQ_SCHEDULER_KEY is not None:
        found.append(Slot(inventory.Holder("", JobState.SCHEDULED, RQ_SCHEDULER_KEY, None), Place.RQ_SCHEDULER))
    return found


def count_rq(backend: RQBackend, names: Sequence[str], tally: Tally) -> None:
    """Fill `tally` with what remains in RQ: sizes where they suffice, per-job reads where they do not."""
    found = slots(backend, names)
    for slot, size in zip(found, inventory.sizes(backend.connection, [s.holder for s in found])):
        if not size:
            continue
        if slot.place is Place.SCHEDULED and slot.holder.queue:
            tally.scheduled[slot.holder.queue] += size
        if tally.per_job or _must_read(slot, size):
            _read_slot(backend, slot, tally)
        else:
            tally.counts[(slot.holder.queue, ANY_JOB, slot.place)] += size
    for name in names:
        _read_intermediate(backend, name, tally)


def pending_size(backend: RQBackend, names: Sequence[str]) -> int:
    """Jobs waiting in RQ by sizes alone: what a per-job breakdown would have to read."""
    found = slots(backend, names)
    done = {Place.FINISHED, Place.CANCELED}
    return sum(n for s, n in zip(found, inventory.sizes(backend.connection, [s.holder for s in found]))
               if s.place not in done)


def _must_read(slot: Slot, size: int) -> bool:
    """Started entries are few and must be judged; failed ones say if they will retry; shared sets need origin."""
    if slot.place is Place.STARTED or not slot.holder.queue:
        return True
    return slot.place is Place.FAILED and size <= FAILED_READ_LIMIT


def _read_slot(backend: RQBackend, slot: Slot, tally: Tally) -> None:
    for page in inventory.id_pages(backend.connection, slot.holder):
        ids = [job_id for job_id, _ in page]
        if slot.place is Place.STARTED:
            tally.started.update(ids)
        for row in inventory.fetch_fields(backend.connection, backend.job_class, ids, FIELDS):
            _count(backend, slot.holder.queue, slot.place, row, tally)


def _read_intermediate(backend: RQBackend, name: str, tally: Tally) -> None:
    """Jobs an RQ worker popped (BLMOVE) but did not register as started: a worker that dies right there
    leaves them in this list, where only RQ's maintenance finds them."""
    key = backend.queue(name).intermediate_queue_key
    listed = (decode.text(i) or "" for i in backend.connection.lrange(key, 0, INTERMEDIATE_LIMIT - 1))
    # A worker may be killed after registering the job as started but before its status says so (RQ 3):
    # the started registry has it then, counted once, there.
    ids = [i for i in listed if i not in tally.started]
    for start in range(0, len(ids), inventory.BATCH):
        batch = ids[start:start + inventory.BATCH]
        for row in inventory.fetch_fields(backend.connection, backend.job_class, batch, FIELDS):
            if row is not None and decode.text(row.get("status")) not in MOVED_ON:
                _count(backend, name, Place.INTERMEDIATE, row, tally)


def _count(backend: RQBackend, queue: str, where: Place, row: dict[str, object] | None, tally: Tally) -> None:
    fields = {k: decode.text(v) if isinstance(v, (bytes, str)) else None for k, v in (row or {}).items()
              if k != "data"}
    need_name = tally.per_job or tally.job_name is not None
    data = (row or {}).get("data")
    name = decode.func_name(data if isinstance(data, bytes) else None, backend.serializer) if need_name else ANY_JOB
    if tally.job_name is not None and name != tally.job_name:
        return
    place = _place(where, fields, tally.live)
    tally.counts[(queue or fields.get("origin") or "", name if tally.per_job else ANY_JOB, place)] += 1
    if tally.watch is not None and tally.per_job:
        at = decode.parse_time(fields.get("created_at")) or decode.parse_time(fields.get("enqueued_at"))
        if at is not None and tally.watch(name) is not None:
            tally.arrivals.append((name, at))


def _place(where: Place, f: dict[str, str | None], live: frozenset[str]) -> Place:
    """Refine where a job was found by what its hash says."""
    if where in (Place.QUEUED, Place.SCHEDULED):
        state = decode.waiting_state(JobState(where.value), f.get("status"), f.get("started_at"),
                                     f.get("number_of_retries"))
        return Place.RETRYING if state is JobState.RETRYING else where
    if where is Place.STARTED:
        return Place.STARTED if f.get("worker_name") in live else Place.STALE
    if where is Place.FAILED and int(f.get("retries_left") or 0) > 0:
        return Place.FAILED_RETRYABLE
    return where


def scheduler_gaps(backend: RQBackend, queues: Iterable[str]) -> list[str]:
    """Queues with scheduled jobs whose scheduler lock nobody holds: no RQ scheduler would ever enqueue them."""
    holders = workers.scheduler_holders(backend.connection, set(queues))
    return sorted(q for q, holder in holders.items() if holder is None)
