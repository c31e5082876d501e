"""RQ's workers as WorkerInfo values, judged alive or dead, and which queues' scheduler lock someone holds."""
from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta, timezone

import rq
from redis import Redis
from rq.defaults import DEFAULT_JOB_MONITORING_INTERVAL
from rq.scheduler import RQScheduler
from rq.worker import BaseWorker

from adapters.base import BackendName, WorkerInfo
from adapters.rq_backend import compat, decode

# A busy RQ worker heartbeats every job monitoring interval; twice that plus margin without one = dead.
BUSY_SILENCE = timedelta(seconds=2 * DEFAULT_JOB_MONITORING_INTERVAL + 60)
HOST = socket.gethostname()


def list_workers(connection: Redis, worker_class: type[rq.Worker] = rq.Worker,
                 now: datetime | None = None) -> list[WorkerInfo]:
    """Every registered RQ worker, judged alive or dead as of `now`."""
    workers = worker_class.all(connection=connection)
    queue_names = {q for w in workers for q in w.queue_names()}
    holders = scheduler_holders(connection, queue_names)
    at = now or datetime.now(timezone.utc)
    return [_worker(w, holders, at) for w in sorted(workers, key=lambda w: w.name)]


def scheduler_holders(connection: Redis, queue_names: set[str]) -> dict[str, str | None]:
    """Queue name -> the value of its scheduler lock (who enqueues its due scheduled jobs), None when free."""
    names = sorted(queue_names)
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.get(RQScheduler.get_locking_key(name))
        return {name: decode.text(value) for name, value in zip(names, pipe.execute())}


def judge(hostname: str | None, pid: int | None, state: str, last_heartbeat: datetime | None, now: datetime,
          host: str = HOST) -> tuple[bool, str]:
    """Alive or not, and why. RQ keeps a SIGKILLed worker registered until its key expires (minutes), so a
    worker on this host whose process is gone, or a busy one silent for too long, is dead already."""
    if hostname == host and pid and not _pid_alive(pid):
        return False, f"process {pid} is gone"
    silent = now - last_heartbeat if last_heartbeat else None
    if state == "busy" and silent is not None and silent > BUSY_SILENCE:
        return False, f"busy but silent for {int(silent.total_seconds())}s"
    return True, state


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _worker(worker: BaseWorker, holders: dict[str, str | None], now: datetime) -> WorkerInfo:
    queues = tuple(worker.queue_names())
    hostname, state = decode.text(worker.hostname), decode.text(worker.get_state()) or "?"
    heartbeat = _aware(worker.last_heartbeat)
    alive, detail = judge(hostname, worker.pid, state, heartbeat, now)
    current = compat.current_job_id(worker)
    return WorkerInfo(BackendName.RQ, worker.name, queues, alive, detail, hostname=hostname, pid=worker.pid,
                      state=state, current_job_id=current, started_at=_aware(worker.birth_date),
                      last_heartbeat=heartbeat, running=1 if current else 0,
                      runs_scheduler=_runs_scheduler(worker, queues, holders))


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _runs_scheduler(worker: BaseWorker, queues: tuple[str, ...], holders: dict[str, str | None]) -> bool | None:
    locks = {holders.get(q) for q in queues} - {None}
    if not locks:
        return False  # nobody holds the lock of its queues, so neither does it
    if str(worker.pid) in locks or worker.name in locks:  # RQ 2.0 stored the worker's pid
        return True
    return None
