"""Playbook plans (playbooks/*.toml, documented in docs/playbooks.md): read with tomllib and validated into a
frozen Plan; every error names the file, the line and the key, and says what is expected."""
from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import replace as with_
from pathlib import Path
from typing import Any

from migrator.errors import BadInput
from migrator.playbook.locate import Locator
from migrator.playbook.values import (COMMON, HEALTH_KEYS, KEYS, PARAM, TOP, HealthLimits, Kind, Plan, Step,
                                      parse_duration)

ON_FAIL = ("stop", "rollback")
BACKENDS = ("rq", "postgres", "all")
# Where a job waits (adapters.base.Place) that a drain step may choose not to wait for.
PLACES = {"queued", "scheduled", "retrying", "deferred", "started", "failed-retryable", "in-transfer", "stale"}


def load(path: str | Path, overrides: Mapping[str, str] | None = None, lenient: bool = False) -> Plan:
    """Read and validate one plan file; `overrides` (from --set KEY=VALUE) fill its [params]. `lenient` leaves
    a param without a value as {name} (status and abort need the plan's name and steps, not its values)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise BadInput(f"cannot read playbook {path}: {exc.strerror or exc}; give the path of a .toml plan") from exc
    return parse(text, str(path), overrides or {}, lenient)


def parse(text: str, filename: str, overrides: Mapping[str, str] | None = None, lenient: bool = False) -> Plan:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{filename}: {exc}; fix the TOML syntax") from exc
    return Validator(raw, filename, Locator(text), dict(overrides or {}), lenient).plan()


class Validator:
    """Turns tomllib's dict into a Plan, or raises BadInput at the first problem, with its line."""

    def __init__(self, raw: dict[str, Any], filename: str, where: Locator, overrides: dict[str, str],
                 lenient: bool = False) -> None:
        self.raw, self.filename, self.where, self.overrides = raw, filename, where, overrides
        self.lenient = lenient
        self.params: dict[str, str] = {}

    def fail(self, table: str, key: str | None, expected: str, occurrence: int = 0) -> BadInput:
        line = self.where.line_of(table, key, occurrence)
        place = f"[[step]] #{occurrence + 1}" if table == "step" else (f"[{table}]" if table else "top level")
        what = f"key {key!r} in {place}" if key else place
        return BadInput(f"{self.filename}:{line}: {what}: {expected}")

    def plan(self) -> Plan:
        for key in self.raw:
            if key not in TOP:
                raise self.fail("" if not isinstance(self.raw[key], dict) else key, key if not isinstance(
                    self.raw[key], dict) else None, f"unknown table or key {key!r}; expected {', '.join(sorted(TOP))}")
        head = self._table("playbook")
        name = head.get("name")
        if not isinstance(name, str) or not name.strip():
            raise self.fail("playbook", "name", 'expected a non-empty string, e.g. name = "rq-to-postgres"')
        self._only("playbook", head, {"name", "summary"})
        self.params = self._params()
        health = self._health("health", self._table("health"), HealthLimits())
        propagation = self._table("propagation")
        self._only("propagation", propagation, {"within"})
        within = self._duration("propagation", propagation, "within", 30.0) or 0.0
        steps = self.raw.get("step", [])
        if not isinstance(steps, list) or not steps:
            raise self.fail("", None, "a plan needs at least one [[step]] table")
        parsed = tuple(self._step(i, s, health) for i, s in enumerate(steps))
        return Plan(name.strip(), self.filename, parsed, str(head.get("summary", "")), health, within,
                    dict(self.params))

    def _table(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            raise self.fail("", name, f"expected a table [{name}]")
        return value

    def _only(self, table: str, values: Mapping[str, Any], allowed: set[str], occurrence: int = 0) -> None:
        for key in values:
            if key not in allowed:
                raise self.fail(table, key, f"unknown key; expected one of {', '.join(sorted(allowed))}", occurrence)

    def _params(self) -> dict[str, str]:
        table = self._table("params")
        for key, value in table.items():
            if not isinstance(value, str):
                raise self.fail("params", key, "expected a string (the default; --set KEY=VALUE overrides it)")
        unknown = sorted(set(self.overrides) - set(table))
        if unknown:
            raise BadInput(f"{self.filename}: --set {unknown[0]}: the plan has no such param; its [params] are "
                           f"{', '.join(sorted(table)) or 'none'}")
        return {**table, **self.overrides}

    def _text(self, table: str, key: str, value: Any, occurrence: int) -> str:
        """A string with {param} placeholders filled in."""
        if not isinstance(value, str):
            raise self.fail(table, key, "expected a string", occurrence)

        def fill(match: Any) -> str:
            name = match.group(1)
            if name not in self.params:
                raise self.fail(table, key, f"unknown param {{{name}}}; declare it under [params]", occurrence)
            if not self.params[name]:
                if self.lenient:
                    return str(match.group(0))
                raise self.fail(table, key, f"param {{{name}}} has no value; run with --set {name}=VALUE or give "
                                f"it a default under [params]", occurrence)
            return self.params[name]
        return PARAM.sub(fill, value)

    def _duration(self, table: str, values: Mapping[str, Any], key: str, default: float | None,
                  occurrence: int = 0) -> float | None:
        if key not in values:
            return default
        try:
            return parse_duration(values[key])
        except ValueError:
            raise self.fail(table, key, 'expected a duration: seconds (90) or "30s", "5m", "1h"',
                            occurrence) from None

    def _number(self, table: str, values: Mapping[str, Any], key: str, low: float, high: float,
                occurrence: int = 0) -> float | None:
        if key not in values:
            return None
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise self.fail(table, key, f"expected a number from {low:g} to {high:g}", occurrence)
        return float(value)

    def _health(self, table: str, values: Mapping[str, Any], base: HealthLimits, occurrence: int = 0) -> HealthLimits:
        if table == "health":
            self._only(table, values, HEALTH_KEYS)
        rate = self._number(table, values, "max_failure_rate", 0, 1, occurrence)
        margin = self._number(table, values, "margin", 0, 1, occurrence)
        wait = self._duration(table, values, "max_p95_wait", None, occurrence)
        runs = self._number(table, values, "min_runs", 0, 1e9, occurrence)
        return HealthLimits(base.max_failure_rate if rate is None else rate, base.margin if margin is None else margin,
                            base.max_p95_wait if wait is None else wait, base.min_runs if runs is None else int(runs))

    def _step(self, i: int, values: Any, health: HealthLimits) -> Step:
        if not isinstance(values, dict):
            raise self.fail("step", None, "expected a [[step]] table", i)
        do = values.get("do")
        kinds = ", ".join(k.value for k in Kind)
        if do is None:
            raise self.fail("step", None, f"missing key 'do'; expected do = one of {kinds}", i)
        try:
            kind = Kind(do)
        except ValueError:
            raise self.fail("step", "do", f"unknown step {do!r}; expected one of {kinds}", i) from None
        allowed, required = KEYS[kind]
        self._only("step", values, allowed | COMMON, i)
        for key in sorted(required):
            if key not in values:
                raise self.fail("step", None, f"a {kind} step needs key {key!r}", i)
        on_fail = values.get("on_fail", "stop")
        if on_fail not in ON_FAIL:
            raise self.fail("step", "on_fail", 'expected "stop" or "rollback"', i)
        line = self.where.line_of("step", None, i)
        step = Step(i + 1, kind, line, self._text("step", "name", values.get("name", ""), i), on_fail)
        return self._details(step, kind, values, health, i)

    def _details(self, step: Step, kind: Kind, v: Mapping[str, Any], health: HealthLimits, i: int) -> Step:
        job = self._text("step", "job", v["job"], i) if "job" in v else None
        if job is not None and not job.strip():
            raise self.fail("step", "job", "expected a job name, e.g. job = \"app.jobs.send_email\"", i)
        step = with_(step, job=job)
        if kind is Kind.ROLLOUT:
            percent = self._number("step", v, "percent", 0, 100, i)
            everything = v.get("all", False)
            if not isinstance(everything, bool):
                raise self.fail("step", "all", "expected true or false", i)
            if (percent is None) == (not everything):
                raise self.fail("step", None, "a rollout step needs exactly one of percent = P or all = true", i)
            return with_(step, percent=percent, everything=everything)
        if kind is Kind.SOAK:
            return with_(step, duration=self._duration("step", v, "duration", None, i),
                         health=self._health("step", v, health, i))
        if kind in (Kind.DRAIN, Kind.COMPAT):
            backend = v.get("backend", "rq" if kind is Kind.DRAIN else "all")
            if backend not in BACKENDS:
                raise self.fail("step", "backend", 'expected "rq", "postgres" or "all"', i)
            scan = v.get("scan", True)
            if not isinstance(scan, bool):
                raise self.fail("step", "scan", "expected true or false", i)
            ignore = v.get("ignore", [])
            if not isinstance(ignore, list) or any(x not in PLACES for x in ignore):
                raise self.fail("step", "ignore", f"expected a list of places among {', '.join(sorted(PLACES))}", i)
            return with_(step, backend=backend, scan=scan, timeout=self._duration("step", v, "timeout", 600.0, i),
                         quiet_period=self._duration("step", v, "quiet_period", 10.0, i), ignore=tuple(ignore))
        if kind is Kind.TRANSFER:
            source, target = v.get("from", "rq"), v.get("to", "postgres" if v.get("from", "rq") == "rq" else "rq")
            for key, value in (("from", source), ("to", target)):
                if value not in ("rq", "postgres"):
                    raise self.fail("step", key, 'expected "rq" or "postgres"', i)
            if source == target:
                raise self.fail("step", "to", "expected the other backend than 'from'", i)
            return with_(step, source=source, target=target)
        if kind is Kind.CANARY:
            queue = self._text("step", "queue", v.get("queue", "default"), i)
            return with_(step, timeout=self._duration("step", v, "timeout", 30.0, i), queue=queue)
        if kind in (Kind.CONFIRM, Kind.CHECKLIST):
            items = v.get("items", [])
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise self.fail("step", "items", "expected a list of strings", i)
            if kind is Kind.CHECKLIST and not items and "text" not in v:
                raise self.fail("step", None, "a checklist step needs text or items", i)
            return with_(step, text=self._text("step", "text", v.get("text", ""), i),
                         items=tuple(self._text("step", "items", x, i) for x in items))
        return step
