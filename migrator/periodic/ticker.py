"""The ticker every `migrator worker` runs: once a second it takes the due schedules no other ticker holds and
enqueues each tick through the router (so the flags decide the backend, and a periodic job can be flipped)."""
from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime

from adapters.base import (BackendUnavailable, DuplicateJob, JobRefused, JobSpec, PeriodicEntry, PeriodicStore)
from migrator.periodic import schedule
from migrator.routing.router import Router

log = logging.getLogger("migrator.periodic")


def sync_config(store: PeriodicStore, entries: Sequence[PeriodicEntry]) -> None:
    """Make the stored config schedules those of migrator.toml: add or update each, drop the ones it no longer
    lists (schedules from code or rq-scheduler are left alone)."""
    for entry in entries:
        store.save(entry)
    gone = set(store.names("config")) - {e.name for e in entries}
    if gone:
        store.remove(sorted(gone), source="config")


def fire(router: Router, entry: PeriodicEntry, at: datetime) -> bool:
    """Enqueue one tick; True when it is in a backend (now or by an earlier try), False to try again next turn."""
    spec = JobSpec(job_name=entry.job_name, args=entry.args, kwargs=dict(entry.kwargs), queue=entry.queue,
                   job_id=schedule.tick_job_id(entry, at), timeout=entry.timeout, unique=True,
                   meta={"migrator_periodic": entry.name})
    try:
        router.enqueue(spec)
    except DuplicateJob:
        return True  # this tick was enqueued by a ticker that died before it could record it
    except BackendUnavailable as exc:
        log.warning("periodic %s: not enqueued (%s); trying again", entry.name, exc)
        return False
    except JobRefused as exc:  # a payload or option no backend takes: skip the tick, say so
        log.error("periodic %s: tick skipped, the job was refused: %s", entry.name, exc)
    return True


class Ticker(threading.Thread):
    """Ticks until stop(); errors of one turn are logged, the next turn tries again."""

    def __init__(self, store: PeriodicStore, router: Router, interval: float = 1.0,
                 config: Sequence[PeriodicEntry] | None = None) -> None:
        super().__init__(name="migrator-periodic", daemon=True)
        self.store, self.router, self.interval = store, router, interval
        self._unsynced = config  # migrator.toml's schedules: synced on the first turn that reaches Postgres
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                if self._unsynced is not None:
                    sync_config(self.store, self._unsynced)
                    self._unsynced = None
                self.store.tick(lambda entry, at: fire(self.router, entry, at), schedule.next_tick)
            except Exception as exc:  # a lost database: the worker goes on, ticks wait for the next turn
                log.warning("periodic ticker: %s", exc)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(10)
