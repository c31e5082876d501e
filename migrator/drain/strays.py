"""Stray enqueues: jobs of a job name already routed to the new backend that still arrive in RQ once the
flip has had time to reach every process — some process enqueues without the router (old code mid-deploy)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache

from adapters.base import Arrival, BackendName
from migrator.routing import decide, history, router
from migrator.config import Settings
from migrator.drain.values import RoutedBack, Stray
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
    return decide.decide(job, snapshot).backend is BackendName.POSTGRES


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


# The router's own marks on a job it sent to RQ on purpose (see migrator.routing.router), and what they mean.
ROUTER_MARKS = {router.FALLBACK_META: "fallback", router.REFUSED_META: "refused"}


def split_arrivals(arrivals: Iterable[Arrival]) -> tuple[list[tuple[str, datetime]], list[tuple[str, str, datetime]]]:
    """(unexplained arrivals: (job name, at)), (the router's own: (job name, why, at))."""
    unexplained: list[tuple[str, datetime]] = []
    deliberate: list[tuple[str, str, datetime]] = []
    for a in arrivals:
        why = next((ROUTER_MARKS[m] for m in a.marks if m in ROUTER_MARKS), None)
        if why is None:
            unexplained.append((a.job_name, a.at))
        else:
            deliberate.append((a.job_name, why, a.at))
    return unexplained, deliberate


def group_routed_back(deliberate: Iterable[tuple[str, str, datetime]]) -> list[RoutedBack]:
    """Count the router's own RQ enqueues per job name and reason, with the first and last time seen."""
    found: dict[tuple[str, str], tuple[int, datetime, datetime]] = {}
    for job, why, at in deliberate:
        count, first, last = found.get((job, why), (0, at, at))
        found[(job, why)] = (count + 1, min(first, at), max(last, at))
    return [RoutedBack(job, why, n, first, last) for (job, why), (n, first, last) in sorted(found.items())]


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
