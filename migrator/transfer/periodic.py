"""`transfer --periodic`: rq-scheduler's cron and interval entries into the new backend's schedule, exactly once.
Each entry is added under its rq-scheduler id (a re-run adds nothing twice), then taken out of rq-scheduler's
schedule so that it stops enqueueing it. Stop rq-scheduler first: one that is enqueueing an entry at that very moment
may put it back (it removes and re-adds each entry it enqueues)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.base import PeriodicStore
from adapters.rq_backend import RQBackend
from adapters.rq_backend import periodic as rq_periodic
from migrator.periodic import schedule
from migrator.errors import BadInput


@dataclass
class PeriodicReport:
    """What moved (rq-scheduler id -> job name), what stayed and why; with dry_run, what would move."""

    moved: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"moved": self.moved, "refused": self.refused, "dry_run": self.dry_run}


def transfer_periodic(legacy: RQBackend, store: PeriodicStore, dry_run: bool = False) -> PeriodicReport:
    report = PeriodicReport(dry_run=dry_run)
    for job_id, entry, why in rq_periodic.scheduler_entries(legacy.connection, legacy.job_class, legacy.serializer):
        if entry is None:
            report.refused[job_id] = why
            continue
        try:
            entry = schedule.validate(entry)
        except BadInput as exc:
            report.refused[job_id] = str(exc)
            continue
        if not dry_run:
            store.add_once(entry)  # first: a crash before the removal leaves it on both, and a re-run finishes
            rq_periodic.remove_scheduler_entry(legacy.connection, legacy.job_class, job_id)
        report.moved[job_id] = entry.job_name
    return report
