"""Settings from the environment, `migrator.toml` or `[tool.migrator]` in pyproject.toml; and mask_url()."""
from __future__ import annotations

import importlib
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from adapters.base import PickleOptIn
from adapters.urls import mask_url
from migrator.errors import BadInput

__all__ = ["Settings", "load", "mask_url", "read_file_settings"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://127.0.0.1:5432/postgres"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, resolved once: environment over migrator.toml over defaults."""

    redis_url: str = DEFAULT_REDIS_URL
    database_url: str = DEFAULT_DATABASE_URL
    job_modules: tuple[str, ...] = ()
    queues: tuple[str, ...] = ("default",)
    flag_cache_seconds: float = 1.0
    lock_file: str = "migrator.lock.json"
    schema: str = "public"  # the Postgres schema of migrator's tables
    # Postgres backend worker tuning (see docs/backend.md for why each default).
    recovery_grace_seconds: float = 5.0
    reap_interval_seconds: float = 2.0
    poll_interval_seconds: float = 1.0
    # The app's RQ classes and serializer, as import paths ("app.rq:JSONSerializer" or "app.rq.JSONSerializer"):
    # every RQ-routed job, drain-check, transfer and compat scan read and write RQ the way the app's workers do.
    rq_serializer: str | None = None
    rq_job_class: str | None = None
    rq_queue_class: str | None = None
    # Jobs whose arguments may travel pickled on the new backend (off by default; README, "Pickled payloads").
    pickle_payloads: PickleOptIn = PickleOptIn()
    extra: dict[str, Any] = field(default_factory=dict)

    def with_urls(self, redis_url: str | None = None, database_url: str | None = None) -> "Settings":
        return replace(self, redis_url=redis_url or self.redis_url,
                       database_url=database_url or self.database_url)


# Keys read where they are used (wiring, router), kept in Settings.extra.
_EXTRA = {"fallback", "enqueue_synchronous_commit", "periodic", "worker_setup", "worker_exception_handlers"}
_KNOWN = {"job_modules", "queues", "flag_cache_seconds", "lock_file", "recovery_grace_seconds",
          "reap_interval_seconds", "poll_interval_seconds", "redis_url", "database_url", "schema", "rq_serializer",
          "rq_job_class", "rq_queue_class", "pickle_payloads"}


def read_file_settings(cwd: Path) -> dict[str, Any]:
    """The [migrator] table from migrator.toml, else [tool.migrator] from pyproject.toml, else {}."""
    own = cwd / "migrator.toml"
    try:
        if own.exists():
            return tomllib.loads(own.read_text())
        pyproject = cwd / "pyproject.toml"
        if pyproject.exists():
            return tomllib.loads(pyproject.read_text()).get("tool", {}).get("migrator", {})
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"cannot read {own.name if own.exists() else 'pyproject.toml'}: {exc}; fix the TOML syntax") from exc
    return {}


def load(cwd: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Settings with precedence: environment > file > defaults (command-line flags are applied by the CLI)."""
    env = dict(os.environ) if env is None else env
    raw = read_file_settings(cwd or Path.cwd())
    values: dict[str, Any] = {}
    extra = {k: v for k, v in raw.items() if k not in _KNOWN}
    unknown = sorted(set(extra) - _EXTRA)
    if unknown:
        raise BadInput(f"unknown configuration key {unknown[0]!r}; known keys: {', '.join(sorted(_KNOWN | _EXTRA))}")
    for key in ("job_modules", "queues"):
        if key in raw:
            if not isinstance(raw[key], list) or not all(isinstance(x, str) for x in raw[key]):
                raise BadInput(f"configuration key {key!r} must be a list of strings, e.g. {key} = [\"app.jobs\"]")
            values[key] = tuple(raw[key])
    for key in ("flag_cache_seconds", "recovery_grace_seconds", "reap_interval_seconds", "poll_interval_seconds"):
        if key in raw:
            if not isinstance(raw[key], (int, float)) or raw[key] < 0:
                raise BadInput(f"configuration key {key!r} must be a number >= 0")
            values[key] = float(raw[key])
    for key in ("lock_file", "redis_url", "database_url", "schema", "rq_serializer", "rq_job_class", "rq_queue_class"):
        if key in raw:
            values[key] = str(raw[key])
    if "pickle_payloads" in raw:
        values["pickle_payloads"] = pickle_opt_in(raw["pickle_payloads"])
    if env.get("REDIS_URL"):
        values["redis_url"] = env["REDIS_URL"]
    if env.get("DATABASE_URL"):
        values["database_url"] = env["DATABASE_URL"]
    return Settings(**values, extra=extra)


def pickle_opt_in(value: Any) -> PickleOptIn:
    """`pickle_payloads = true` (every job), `false`, or a list of job names."""
    if isinstance(value, bool):
        return PickleOptIn(everything=value)
    if isinstance(value, list) and all(isinstance(x, str) and "." in x for x in value):
        return PickleOptIn(frozenset(value))
    raise BadInput("configuration key 'pickle_payloads' must be true, false or a list of job names, e.g. "
                   "pickle_payloads = [\"app.jobs.send_invoice\"]")


def import_object(path: str, key: str) -> Any:
    """The object an import path names (`pkg.mod:Name` or `pkg.mod.Name`); BadInput naming the configuration key."""
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise BadInput(f"configuration key {key!r}: cannot import {path!r} ({exc}); give an import path such as "
                       "\"rq.serializers:JSONSerializer\"") from exc
