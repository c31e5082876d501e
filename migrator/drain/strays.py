"""Stray enqueues: jobs of a job name already routed to the new backend that still arrive in RQ once the
flip has had time to reach every process — some process enqueues without the router (old code mid-deploy)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache

from adapters.base import BackendName
from migrator.routing import decide as router, history
from migrator.config import Settings
from migrator.drain.values import Stray
from migrator.routing.flag_store import FlagStore
from migrator.routing.snapshot import RoutingSnapshot

HISTORY_LIMIT = 100_000  # routing edits read to date the flips; a project makes a few hundred at most
# Slack on top of the flag cache period: one store read and clock skew between hosts.
READ_SLACK = timedelta(seconds=1)

RoutedSince = Callable[[str], "datetime | None"]


class RoutingTimeline:
    """Since when each job name has routed to the new backend without interruption, from the audit log."""

    def __init__(self, entries: Sequence[history.Entry], current: RoutingSnapshot) -> None:
        self.entries = sorted(entries, key=lambda e: (e.at, e.id))  # oldest first
        self.current = current
        self.since: RoutedSince = lru_cache(maxsize=65536)(self._since)

    def _since(self, job: str) -> datetime | None:
        if not _is_new(job, self.current):
            return None
        since: datetime | None = None
        for entry in self.entries:
            if not _is_new(job, entry.after):
                since = None
            elif since is None:  # routed new from here, or already before the oldest entry we hold
                since = entry.before.changed_at or entry.at if _is_new(job, entry.before) else entry.at
        # Flags written without an audit entry: the last change is the latest the flip can have happened.
        return since or self.current.changed_at


def _is_new(job: str, snapshot: RoutingSnapshot) -> bool:
    return router.decide(job, snapshot).backend is BackendName.POSTGRES


def propagation_bound(settings: Settings) -> timedelta:
    """How long a routing change may take to reach every process: one cache period plus one read."""
    return timedelta(seconds=settings.flag_cache_seconds) + READ_SLACK


def load_timeline(store: FlagStore) -> RoutingTimeline:
    """The current routing and its history from the flag store (BackendUnavailable / SchemaMissing when
    unreadable, BadInput when flipper is not installed)."""
    current = store.snapshot()
    if current.is_legacy:
        return RoutingTimeline((), current)  # nothing routes new: no stray can exist, skip the log
    return RoutingTimeline(store.history(HISTORY_LIMIT), current)


def find_strays(arrivals: Iterable[tuple[str, datetime]], since: RoutedSince, bound: timedelta) -> list[Stray]:
    """Group the RQ arrivals (job name, time it entered RQ) that came after their job's flip plus `bound`."""
    found: dict[str, tuple[int, datetime, datetime, datetime]] = {}
    for job, at in arrivals:
        flipped_at = since(job)
        if flipped_at is None or at <= flipped_at + bound:
            continue
        count, first, last, _ = found.get(job, (0, at, at, flipped_at))
        found[job] = (count + 1, min(first, at), max(last, at), flipped_at)
    return [Stray(job, n, first, last, flipped) for job, (n, first, last, flipped) in sorted(found.items())]
