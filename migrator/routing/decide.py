"""Where one job goes: decide(job_name, snapshot) -> Route, a pure function of the routing snapshot."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from adapters.base import BackendName
from migrator.routing.snapshot import RoutingSnapshot

BUCKETS = 10_000  # percentages in steps of 0.01


@dataclass(frozen=True, slots=True)
class Route:
    """Where one job name goes, and the rule that sent it there (flipped, pinned, rollout...)."""

    backend: BackendName
    reason: str


# Routes are shared constants so that a decision allocates nothing.
PINNED = Route(BackendName.RQ, "pinned")
FLIPPED = Route(BackendName.POSTGRES, "flipped")
ROLLOUT_ALL = Route(BackendName.POSTGRES, "rollout all")
IN_PERCENT = Route(BackendName.POSTGRES, "in rollout percentage")
OUT_OF_PERCENT = Route(BackendName.RQ, "outside rollout percentage")
DEFAULT = Route(BackendName.RQ, "default")


@lru_cache(maxsize=8192)
def bucket(job_name: str) -> int:
    """A stable bucket in [0, 10000) for a job name, the same in every process and Python version.

    Not flipper's ConsistentHashPercentageBucketer: it scores over 100 buckets with `score <= pct`, so bucket 0
    is always in (10% enables about 11%, 99% enables all). Here a job is in iff bucket < percent * 100, which is
    exact, monotonic in the percentage, and uniform because sha256 is.
    """
    digest = hashlib.sha256(job_name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def decide(job_name: str, snapshot: RoutingSnapshot) -> Route:
    """Per-job pin or flip first, then rollout all, then the percentage, else legacy."""
    if job_name in snapshot.pinned:
        return PINNED
    if job_name in snapshot.flipped:
        return FLIPPED
    if snapshot.rollout_all:
        return ROLLOUT_ALL
    if snapshot.percent <= 0:
        return DEFAULT
    return IN_PERCENT if bucket(job_name) < snapshot.threshold else OUT_OF_PERCENT
