"""RoutingSnapshot: the whole routing state as one frozen value, read in one statement and cached per process."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from adapters.base import BackendName


@dataclass(frozen=True, slots=True)
class RoutingSnapshot:
    """Per-job flips (new) and pins (legacy), and the rollout rule; `version` grows by one per edit."""

    flipped: frozenset[str] = frozenset()
    pinned: frozenset[str] = frozenset()
    rollout_all: bool = False
    percent: float = 0.0  # 0..100, in steps of 0.01
    version: int = 0
    changed_at: datetime | None = None

    @property
    def threshold(self) -> int:
        """Buckets (of 10,000) the percentage includes: a job is in the rollout iff bucket < threshold."""
        return round(self.percent * 100)

    @property
    def is_legacy(self) -> bool:
        """True when every job routes to the legacy backend."""
        return not (self.flipped or self.rollout_all or self.threshold > 0)

    def with_job(self, job: str, route: BackendName | None) -> "RoutingSnapshot":
        """This state with `job` flipped (POSTGRES), pinned (RQ) or back to the rollout rule (None)."""
        flipped, pinned = self.flipped - {job}, self.pinned - {job}
        if route is BackendName.POSTGRES:
            flipped |= {job}
        elif route is BackendName.RQ:
            pinned |= {job}
        return replace(self, flipped=flipped, pinned=pinned)

    def to_json(self) -> dict[str, Any]:
        return {"flipped": sorted(self.flipped), "pinned": sorted(self.pinned), "rollout_all": self.rollout_all,
                "percent": self.percent, "version": self.version,
                "changed_at": self.changed_at.isoformat() if self.changed_at else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RoutingSnapshot":
        changed = data.get("changed_at")
        return cls(frozenset(data.get("flipped", ())), frozenset(data.get("pinned", ())),
                   bool(data.get("rollout_all", False)), float(data.get("percent", 0.0)),
                   int(data.get("version", 0)), datetime.fromisoformat(changed) if changed else None)


LEGACY = RoutingSnapshot()  # what a process routes by before it has ever read the flag store
