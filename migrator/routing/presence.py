"""Router presence: the processes that route jobs and the routing version each applies, as their flag caches
report it in the routing store; how an operator (and the propagation gate) knows a flip took effect everywhere."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.base import RoutingStore

# A router reports when its applied version changes and at least this often (each refresh, when refreshes are
# slower): a heartbeat on the connection its cache already holds, one small upsert.
REPORT_EVERY = 2.0
MISSED_REPORTS = 3  # a router drops out after this many report periods unheard: one slow read is not a departure


def drop_out_after(refresh_seconds: float) -> float:
    """Seconds unheard after which a router counts as gone (stopped, killed, or cut off from the store)."""
    return MISSED_REPORTS * max(REPORT_EVERY, refresh_seconds)


@dataclass(frozen=True, slots=True)
class RouterPresence:
    """One live routing process and the routing version it applies; `last_seen` by the store's clock."""

    host: str
    pid: int
    version: int
    last_seen: datetime

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "version": self.version, "last_seen": self.last_seen.isoformat()}


def live_routers(store: RoutingStore, within_seconds: float) -> list[RouterPresence]:
    """Routers heard from in the last `within_seconds`, by host and pid; a process that stopped reporting (or was
    killed without closing) is left out once that bound has passed since its last report."""
    return [RouterPresence(r.host, r.pid, r.version, r.last_seen) for r in store.routers(within_seconds)]


def lagging(routers: Iterable[RouterPresence], version: int) -> list[RouterPresence]:
    """Routers still applying a routing older than `version` (a newer one is not lagging: it took a later edit)."""
    return [r for r in routers if r.version < version]
