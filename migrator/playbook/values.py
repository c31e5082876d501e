"""The values of a playbook plan: its steps (kinds and the keys each takes), health limits, and durations."""
from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any



class Kind(StrEnum):
    CANARY = "canary"
    COMPAT = "compat"
    FLIP = "flip"
    PIN = "pin"
    UNFLIP = "unflip"
    ROLLOUT = "rollout"
    SOAK = "soak"
    DRAIN = "drain"
    TRANSFER = "transfer"
    CONFIRM = "confirm"
    CHECKLIST = "checklist"


ROUTING = frozenset({Kind.FLIP, Kind.PIN, Kind.UNFLIP, Kind.ROLLOUT})
COMMON = {"do", "name", "on_fail"}
# The keys each kind of step takes (besides do, name, on_fail), and those it requires.
KEYS: dict[Kind, tuple[set[str], set[str]]] = {
    Kind.CANARY: ({"timeout", "queue"}, set()),
    Kind.COMPAT: ({"scan", "backend", "job"}, set()),
    Kind.FLIP: ({"job"}, {"job"}),
    Kind.PIN: ({"job"}, {"job"}),
    Kind.UNFLIP: ({"job"}, {"job"}),
    Kind.ROLLOUT: ({"percent", "all"}, set()),
    Kind.SOAK: ({"duration", "max_failure_rate", "margin", "max_p95_wait", "min_runs"}, {"duration"}),
    Kind.DRAIN: ({"backend", "job", "timeout", "quiet_period", "ignore"}, set()),
    Kind.TRANSFER: ({"from", "to", "job"}, set()),
    Kind.CONFIRM: ({"text"}, {"text"}),
    Kind.CHECKLIST: ({"text", "items"}, set()),
}
TOP = {"playbook", "params", "health", "propagation", "step"}
HEALTH_KEYS = {"max_failure_rate", "margin", "max_p95_wait", "min_runs"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class HealthLimits:
    """The health gate over a soak: the moved jobs' failure rate at most `max_failure_rate` and at most their
    RQ rate before the step plus `margin`; p95 wait from enqueue to start under `max_p95_wait` seconds.
    Rates are judged once at least `min_runs` moved jobs have finished."""

    max_failure_rate: float = 0.02
    margin: float = 0.01
    max_p95_wait: float = 10.0
    min_runs: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"max_failure_rate": self.max_failure_rate, "margin": self.margin,
                "max_p95_wait": self.max_p95_wait, "min_runs": self.min_runs}


@dataclass(frozen=True, slots=True)
class Step:
    index: int  # 1-based, as shown to operators
    kind: Kind
    line: int
    name: str = ""
    on_fail: str = "stop"  # stop | rollback: undo this run's latest routing change, then stop
    job: str | None = None
    percent: float | None = None
    everything: bool = False  # rollout all
    duration: float | None = None  # soak seconds
    timeout: float | None = None
    quiet_period: float | None = None
    backend: str | None = None  # drain / compat scan: rq | postgres | all
    source: str = "rq"  # transfer from
    target: str = "postgres"  # transfer to
    scan: bool = True  # compat: scan live payloads too
    queue: str = "default"  # canary
    text: str = ""
    items: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()  # drain: places that do not count (e.g. "scheduled": moved by a later transfer)
    health: HealthLimits | None = None  # soak: the plan's limits with this step's overrides

    @property
    def changes_routing(self) -> bool:
        return self.kind in ROUTING

    @property
    def title(self) -> str:
        """One line naming what the step does, e.g. `rollout 25%`, `flip app.jobs.send_email`."""
        if self.name:
            return self.name
        if self.kind is Kind.ROLLOUT:
            return "rollout all" if self.everything else f"rollout {self.percent:g}%"
        if self.kind is Kind.SOAK:
            return f"soak {self.duration:g}s"
        if self.kind is Kind.DRAIN:
            but = f" (but {', '.join(self.ignore)})" if self.ignore else ""
            return f"drain-check {self.job or self.backend}{but}"
        if self.kind is Kind.TRANSFER:
            return f"transfer {self.job or 'all'} {self.source} -> {self.target}"
        return f"{self.kind} {self.job}" if self.job else str(self.kind)

    def shape(self) -> dict[str, Any]:
        """What the step does, without its tunables (durations, thresholds): a run can resume after those change."""
        return {"kind": str(self.kind), "job": self.job, "percent": self.percent, "all": self.everything,
                "backend": self.backend, "from": self.source, "to": self.target}

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "title": self.title, "line": self.line, "on_fail": self.on_fail,
                **self.shape(), "duration": self.duration, "timeout": self.timeout,
                "quiet_period": self.quiet_period, "text": self.text, "items": list(self.items),
                "health": self.health.to_json() if self.health else None}


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    path: str
    steps: tuple[Step, ...]
    summary: str = ""
    health: HealthLimits = field(default_factory=HealthLimits)
    propagation_within: float = 30.0  # seconds every live router has to apply a routing change
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Identifies the steps' shapes: a stopped run resumes only on the plan it started with."""
        text = json.dumps([s.shape() for s in self.steps], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_soak(self, seconds: float) -> "Plan":
        """Every soak shortened to `seconds` (the demo's override; a real rollout soaks for as long as written)."""
        return replace(self, steps=tuple(replace(s, duration=seconds) if s.kind is Kind.SOAK else s
                                         for s in self.steps))

    def with_quiet(self, seconds: float) -> "Plan":
        """Every drain's quiet period capped at `seconds` (the demo's override, beside with_soak)."""
        return replace(self, steps=tuple(replace(s, quiet_period=min(s.quiet_period or 0.0, seconds))
                                         if s.kind is Kind.DRAIN else s for s in self.steps))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "summary": self.summary, "fingerprint": self.fingerprint,
                "health": self.health.to_json(), "propagation_within": self.propagation_within,
                "params": dict(self.params), "steps": [s.to_json() for s in self.steps]}


def parse_duration(value: Any) -> float:
    """Seconds from 90, 1.5, "90", "30s", "5m", "1h", "250ms"; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError("a duration")
        unit = match.group(2) or "s"
        seconds = float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration")
    return seconds
