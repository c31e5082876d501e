"""RQBackend: the legacy backend behind the JobBackend protocol, enqueuing and inspecting through rq's own API."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import rq
from redis import Redis
from rq.exceptions import DuplicateJobError, InvalidJobOperation as RQInvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import resolve_serializer

from adapters.base import (BackendName, DuplicateJob, Enqueued, Inventory, InvalidJobOperation, JobInfo, JobRefused,
                           JobSpec, JobState, PendingJob, StateCount, Watch, WorkerInfo)
from adapters.rq_backend import compat
from adapters.rq_backend import connection as conn_mod
from adapters.rq_backend import enqueue as opts
from adapters.rq_backend import inventory, jobinfo, maintenance, remaining, removal
from adapters.rq_backend.connection import reachable
from adapters.rq_backend.workers import list_workers


class RQBackend:
    """RQ on Redis, with the app's own serializer, queue class and job class, so RQ workers see no difference."""

    name = BackendName.RQ

    def __init__(self, redis: str | Redis, serializer: Any = None, queue_class: type[rq.Queue] | None = None,
                 job_class: type[Job] | None = None, trusted_pickles: Callable[[str], bool] | None = None) -> None:
        self.connection = conn_mod.connect(redis) if isinstance(redis, str) else redis
        self.url = redis if isinstance(redis, str) else conn_mod.describe(redis)
        self.serializer = resolve_serializer(serializer)
        self.queue_class = queue_class or rq.Queue
        self.job_class = job_class or Job
        self._queues: dict[str, rq.Queue] = {}
        # Reading RQ's payloads never runs code (decode, safe_pickle) except for the job names this names: the app's
        # pickle_payloads, whose arguments a transfer carries pickled to the new backend.
        self.trusted_pickles = trusted_pickles

    def queue(self, name: str) -> rq.Queue:
        """The rq.Queue of that name, built once: building one resolves the serializer, which costs more than
        a tenth of an enqueue."""
        found = self._queues.get(name)
        if found is None:
            found = self._queues[name] = self.queue_class(name, connection=self.connection, job_class=self.job_class,
                                                          serializer=self.serializer)
        return found

    def ping(self) -> None:
        with reachable(self.url):
            self.connection.ping()

    def close(self) -> None:
        self.connection.close()

    # -- enqueue ---------------------------------------------------------------------------------------------
    def enqueue(self, spec: JobSpec, conn: Any = None) -> Enqueued:
        if conn is not None:
            raise JobRefused(f"{spec.job_name} routes to rq, which cannot enqueue inside the app's database "
                             "transaction (Redis is not part of it): flip it to postgres, or enqueue after the commit")
        with reachable(self.url):
            try:
                job = self._enqueue(spec)
            except DuplicateJobError as exc:
                raise DuplicateJob(str(exc) or f"a job with id {spec.job_id} exists") from exc
        return Enqueued(self.name, job.id, spec.queue, spec.job_name, job)

    def _enqueue(self, spec: JobSpec, pipeline: Any = None) -> Job:
        q = self.queue(spec.queue)
        if spec.run_at is not None and (spec.unique or spec.depends_on):  # RQ's own paths for those
            return q.enqueue_at(spec.run_at, spec.job_name, pipeline=pipeline, **opts.scheduled_options(spec))
        if spec.run_at is not None:  # schedule_job's steps, all on one pipeline (compat.schedule says why)
            options = opts.options(spec)
            at_front = options.pop("at_front")
            job = q.create_job(spec.job_name, status=JobStatus.SCHEDULED, **options)
            if at_front:  # as enqueue_at does: kept on the job, applied when the scheduler enqueues it
                job.enqueue_at_front = True
            pipe = pipeline if pipeline is not None else self.connection.pipeline()
            compat.schedule(q, job, spec.run_at, pipe)
            if pipeline is None:
                pipe.execute()
            return job
        return q.enqueue_call(spec.job_name, pipeline=pipeline, **opts.call_options(spec))

    def enqueue_many(self, specs: Iterable[JobSpec]) -> list[Enqueued]:
        """One pipeline for every job without dependencies (Queue.prepare_data + enqueue_many); a job with
        depends_on is enqueued on its own, because RQ checks its parents' state at enqueue time."""
        specs = list(specs)
        ids: dict[int, Job] = {}
        with reachable(self.url):
            with self.connection.pipeline() as pipe:
                self._enqueue_batch(specs, pipe, ids)
                pipe.execute()
            for i, spec in enumerate(specs):
                if _alone(spec):
                    ids[i] = self._enqueue(spec)
        return [Enqueued(self.name, ids[i].id, s.queue, s.job_name, ids[i]) for i, s in enumerate(specs)]

    def _enqueue_batch(self, specs: list[JobSpec], pipe: Any, ids: dict[int, Job]) -> None:
        by_queue: dict[str, list[tuple[int, Any]]] = defaultdict(list)
        for i, spec in enumerate(specs):
            if _alone(spec):
                continue
            if spec.run_at is not None:
                ids[i] = self._enqueue(spec, pipeline=pipe)
            else:
                by_queue[spec.queue].append((i, self.queue_class.prepare_data(spec.job_name, **opts.options(spec))))
        for name, items in by_queue.items():
            jobs = self.queue(name).enqueue_many([data for _, data in items], pipeline=pipe)
            ids.update((i, job) for (i, _), job in zip(items, jobs))

    # -- inspection ------------------------------------------------------------------------------------------
    def queues(self) -> list[str]:
        with reachable(self.url):
            return sorted(q.name for q in self.queue_class.all(connection=self.connection,
                                                                job_class=self.job_class,
                                                                serializer=self.serializer))

    def _holders(self, queue: str | None) -> list[inventory.Holder]:
        names = [queue] if queue is not None else self.queues()
        holders = [h for name in names for h in inventory.queue_holders(self.queue(name))]
        return holders + inventory.rate_limited_holders(self.connection)

    def refusal(self, spec: JobSpec) -> str | None:
        """Why RQ cannot take this job: an option it has no word for, or a payload the app's serializer refuses."""
        try:
            opts.refuse_unsupported(spec)
            self.serializer.dumps((spec.job_name, None, spec.args, dict(spec.kwargs)))
        except JobRefused as exc:
            return str(exc)
        except Exception as exc:  # the app's serializer may raise anything: it is the reason
            return f"rq's serializer refuses the payload: {type(exc).__name__}: {exc}"
        return None

    def counts(self, queue: str | None = None, job_name: str | None = None, by_job: bool = False) -> list[StateCount]:
        """Per queue and state; per job name too when `job_name` is given or `by_job` (which reads every job's
        name); otherwise a count's job_name is ANY_JOB and costs one LLEN/ZCARD per registry."""
        with reachable(self.url):
            holders = self._holders(queue)
            if job_name is None and not by_job:
                return _only_queue(inventory.fast_counts(self.connection, holders, self.job_class), queue)
            return inventory.scan_counts(self.connection, holders, self.job_class, self.serializer, job_name, queue)

    def raw_counts(self, queue: str) -> dict[JobState, int]:
        """Sizes of one queue's list and registries, one round trip, nothing read per job (retries waiting
        for their interval are counted as scheduled here)."""
        holders = inventory.queue_holders(self.queue(queue))
        with reachable(self.url):
            sizes = inventory.sizes(self.connection, holders)
        totals: dict[JobState, int] = defaultdict(int)
        for holder, size in zip(holders, sizes):
            totals[holder.state] += size
        return dict(totals)

    def iter_pending(self, queue: str | None = None, job_name: str | None = None) -> Iterator[PendingJob]:
        with reachable(self.url):
            holders = self._holders(queue)
            yield from inventory.pending(self.connection, holders, self.job_class, self.serializer, job_name, queue,
                                         self.trusted_pickles)

    def fetch_job(self, job_id: str) -> JobInfo | None:
        with reachable(self.url):
            return jobinfo.fetch(self.connection, self.job_class, self.serializer, job_id)

    def native_job(self, job_id: str) -> Job | None:
        """RQ's own Job, with the app's job class and serializer."""
        with reachable(self.url):
            try:
                return self.job_class.fetch(job_id, connection=self.connection, serializer=self.serializer)
            except NoSuchJobError:
                return None

    def save_meta(self, job_id: str, meta: Mapping[str, Any]) -> bool:
        job = self.native_job(job_id)
        if job is None:
            return False
        job.meta = dict(meta)
        with reachable(self.url):
            job.save_meta()
        return True

    def cancel_job(self, job_id: str) -> bool:
        job = self.native_job(job_id)
        if job is None:
            return False
        with reachable(self.url):
            try:
                job.cancel()
            except RQInvalidJobOperation as exc:
                raise InvalidJobOperation(str(exc)) from exc
        return True

    def delete_job(self, job_id: str) -> bool:
        job = self.native_job(job_id)
        if job is None:
            return False
        with reachable(self.url):
            job.delete()
        return True

    def queued_job_ids(self, queue: str) -> list[str]:
        with reachable(self.url):
            return self.queue(queue).get_job_ids()

    def queued_count(self, queue: str) -> int:
        with reachable(self.url):
            return self.queue(queue).count

    def empty_queue(self, queue: str) -> int:
        with reachable(self.url):
            return int(self.queue(queue).empty() or 0)

    # -- maintenance -----------------------------------------------------------------------------------------
    def remove_pending(self, job_id: str) -> bool:
        with reachable(self.url):
            return removal.remove_pending(self.connection, self.queue, self.job_class, job_id)

    def requeue_failed(self, job_id: str) -> bool:
        with reachable(self.url):
            return removal.requeue_failed(self.connection, self.queue, self.job_class, job_id)

    def release_left_locks(self) -> list[maintenance.LeftLock]:
        """Release the maintenance locks dead workers left behind (see adapters.rq_backend.maintenance), so that
        RQ's workers clean those queues' abandoned jobs at their next maintenance."""
        with reachable(self.url):
            return maintenance.release_left_locks(self.connection, self.queues())

    def workers(self, worker_class: type[rq.Worker] = rq.Worker) -> list[WorkerInfo]:
        """Registered RQ workers, each judged alive or dead (RQ keeps a SIGKILLed worker registered for minutes)."""
        with reachable(self.url):
            return list_workers(self.connection, worker_class)

    def inventory(self, job_name: str | None = None, *, queues: Sequence[str] = (), per_job: bool | None = None,
                  watch: Watch | None = None) -> Inventory:
        """What remains of `job_name` (or of every job) in every queue RQ knows, plus `queues`."""
        with reachable(self.url):
            names = sorted(set(self.queues()) | set(queues))
            source = remaining.Source(self.connection, self.queue, self.job_class, self.serializer)
            return remaining.take_inventory(source, names, self.workers(), job_name, per_job, watch)


def _alone(spec: JobSpec) -> bool:
    """Enqueued on its own, not in enqueue_many's pipeline: RQ checks a dependent's parents at enqueue time, and
    prepare_data has no unique."""
    return bool(spec.depends_on) or spec.unique


def _only_queue(counts: list[StateCount], queue: str | None) -> list[StateCount]:
    """Rate-limit sets span queues: keep their jobs of the asked queue only."""
    return counts if queue is None else [c for c in counts if c.queue == queue]

