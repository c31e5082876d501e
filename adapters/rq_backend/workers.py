"""Live RQ workers as values, and which of them can hold the scheduler lock of their queues."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import rq
from redis import Redis
from rq.scheduler import RQScheduler
from rq.worker import BaseWorker

from adapters.rq_backend import compat, decode


@dataclass(frozen=True, slots=True)
class RQWorker:
    name: str
    hostname: str | None
    pid: int | None
    queues: tuple[str, ...]
    state: str  # RQ's words: idle, busy, suspended, started
    current_job_id: str | None
    last_heartbeat: datetime | None
    # True/False when RQ records it; None when a scheduler holds a lock of its queues but RQ does not say
    # whose (RQ >= 2.x names the lock after the scheduler process, not the worker).
    runs_scheduler: bool | None


def list_workers(connection: Redis, worker_class: type[rq.Worker] = rq.Worker) -> list[RQWorker]:
    workers = worker_class.all(connection=connection)
    queue_names = {q for w in workers for q in w.queue_names()}
    holders = scheduler_holders(connection, queue_names)
    return [_worker(w, holders) for w in sorted(workers, key=lambda w: w.name)]


def scheduler_holders(connection: Redis, queue_names: set[str]) -> dict[str, str | None]:
    """Queue name -> the value of its scheduler lock (who enqueues its due scheduled jobs), None when free."""
    names = sorted(queue_names)
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.get(RQScheduler.get_locking_key(name))
        return {name: decode.text(value) for name, value in zip(names, pipe.execute())}


def _worker(worker: BaseWorker, holders: dict[str, str | None]) -> RQWorker:
    queues = tuple(worker.queue_names())
    return RQWorker(name=worker.name, hostname=decode.text(worker.hostname), pid=worker.pid, queues=queues,
                    state=decode.text(worker.get_state()) or "?", current_job_id=compat.current_job_id(worker),
                    last_heartbeat=worker.last_heartbeat, runs_scheduler=_runs_scheduler(worker, queues, holders))


def _runs_scheduler(worker: BaseWorker, queues: tuple[str, ...], holders: dict[str, str | None]) -> bool | None:
    locks = {holders.get(q) for q in queues} - {None}
    if not locks:
        return False  # nobody holds the lock of its queues, so neither does it
    if str(worker.pid) in locks or worker.name in locks:  # RQ 2.0 stored the worker's pid
        return True
    return None
