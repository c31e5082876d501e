"""Prometheus metrics of both backends, read when scraped: queue depths per backend, queue and state, finished and
failed jobs per job name, workers, and the routing. Names follow rq-exporter where it has an equivalent
(`rq_jobs{queue,status}` -> `migrator_jobs{backend,queue,status}`, `rq_workers{name,queues,state}` ->
`migrator_workers{backend,name,queues,state}`), so a dashboard built on one reads the other with one more label."""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters.base import ANY_JOB, BackendError, JobBackend, JobState
from migrator.errors import MigratorError
from migrator.routing.flag_store import FlagStore

log = logging.getLogger("migrator.metrics")
# Each metric, its type and what it says: the contract a dashboard is built on (docs/metrics.md lists them).
NAMES = {
    "migrator_jobs": "jobs per backend, queue and status (queued, scheduled, deferred, started, retrying, failed...)",
    "migrator_job_runs": "finished and failed jobs still kept, per backend and job name",
    "migrator_workers": "1 per registered worker, by backend, name, queues and state",
    "migrator_workers_alive": "live workers per backend",
    "migrator_backend_up": "1 when the backend answered this scrape, 0 when it could not be read",
    "migrator_routing_version": "the routing version (grows by one per routing change)",
    "migrator_routing_percent": "the rollout percentage of job names routed to the new backend",
    "migrator_routing_flipped": "job names flipped to the new backend (per-job flags)",
}
DONE = (JobState.FINISHED, JobState.FAILED)


class MigrationCollector(Collector):
    """Reads the backends and the routing on every scrape (a scrape every 15-60 s costs a few queries)."""

    def __init__(self, backends: Sequence[JobBackend], store: FlagStore) -> None:
        self.backends, self.store = backends, store

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("migrator_jobs", NAMES["migrator_jobs"], labels=["backend", "queue", "status"])
        runs = GaugeMetricFamily("migrator_job_runs", NAMES["migrator_job_runs"], labels=["backend", "job", "status"])
        workers = GaugeMetricFamily("migrator_workers", NAMES["migrator_workers"],
                                    labels=["backend", "name", "queues", "state"])
        alive = GaugeMetricFamily("migrator_workers_alive", NAMES["migrator_workers_alive"], labels=["backend"])
        up = GaugeMetricFamily("migrator_backend_up", NAMES["migrator_backend_up"], labels=["backend"])
        for backend in self.backends:
            up.add_metric([str(backend.name)], 1.0 if self._read(backend, jobs, runs, workers, alive) else 0.0)
        yield from (jobs, runs, workers, alive, up)
        yield from self._routing()

    def _read(self, backend: JobBackend, jobs: GaugeMetricFamily, runs: GaugeMetricFamily,
              workers: GaugeMetricFamily, alive: GaugeMetricFamily) -> bool:
        name = str(backend.name)
        try:
            counts = backend.counts(by_job=True)
            found = backend.workers()
        except (BackendError, MigratorError) as exc:  # a scrape never fails: the backend reads as down
            log.warning("metrics: %s could not be read: %s", name, exc)
            return False
        per_queue: Counter[tuple[str, str]] = Counter()
        per_job: Counter[tuple[str, str]] = Counter()
        for c in counts:
            per_queue[(c.queue, str(c.state))] += c.count
            if c.state in DONE and c.job_name != ANY_JOB:
                per_job[(c.job_name, str(c.state))] += c.count
        for (queue, status), n in sorted(per_queue.items()):
            jobs.add_metric([name, queue, status], n)
        for (job, status), n in sorted(per_job.items()):
            runs.add_metric([name, job, status], n)
        for w in found:
            workers.add_metric([name, w.name, ",".join(w.queues), w.state if w.alive else "dead"], 1.0)
        alive.add_metric([name], sum(1 for w in found if w.alive))
        return True

    def _routing(self) -> Iterator[Metric]:
        try:
            snapshot = self.store.snapshot()
        except (BackendError, MigratorError) as exc:
            log.warning("metrics: the routing could not be read: %s", exc)
            return
        yield GaugeMetricFamily("migrator_routing_version", NAMES["migrator_routing_version"], value=snapshot.version)
        percent = 100.0 if snapshot.rollout_all else snapshot.percent
        yield GaugeMetricFamily("migrator_routing_percent", NAMES["migrator_routing_percent"], value=percent)
        yield GaugeMetricFamily("migrator_routing_flipped", NAMES["migrator_routing_flipped"],
                                value=len(snapshot.flipped))
