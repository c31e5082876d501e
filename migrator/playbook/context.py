"""What a playbook run works with: settings, the flag store, both backends and the run state, built by wiring."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from adapters.base import PlaybookState
from migrator import wiring
from migrator.config import Settings
from migrator.routing import known_jobs
from migrator.routing.flag_store import FlagStore


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Context:
    """`legacy` and `new` are the concrete backends wiring built: transfer is pairwise and takes them as such;
    everything else uses them through adapters.base's protocols (JobBackend; RunStatsSource for `new`)."""

    settings: Settings
    flags: FlagStore
    legacy: Any
    new: Any
    state: PlaybookState
    clock: Callable[[], datetime] = utcnow
    sleep: Callable[[float], None] = field(default=time.sleep)

    def known_jobs(self) -> list[str]:
        return known_jobs.known_jobs(self.flags.tables, self.settings.job_modules)

    def close(self) -> None:
        for closable in (self.state, self.legacy, self.new):
            try:
                closable.close()
            except Exception:  # closing is best effort: a run's outcome is already recorded
                pass


def open_context(settings: Settings) -> Context:
    return Context(settings, wiring.flag_store(settings), wiring.rq_backend(settings),
                   wiring.postgres_backend(settings), wiring.playbook_state(settings))
