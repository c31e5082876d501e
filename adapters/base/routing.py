"""Routing persistence: where the flags, their audit log, the job names seen and the routers' presence live."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from adapters.base.errors import BackendUnavailable, SchemaMissing

__all__ = ["FlagReader", "HistoryRow", "RouterRow", "RoutingEdit", "RoutingSession", "RoutingStore"]


# -- routing persistence: where the flags, their audit log, the job names seen and the routers' presence live ----
@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One stored audit entry of a routing change; `before` and `after` are routing snapshots as JSON."""

    id: int
    at: datetime
    actor: str
    action: str
    job_name: str | None
    detail: Mapping[str, Any]
    before: Mapping[str, Any]
    after: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RouterRow:
    """One routing process as it last reported itself; `last_seen` is by the store's clock, not the host's."""

    host: str
    pid: int
    version: int
    first_seen: datetime
    last_seen: datetime


class FlagReader(Protocol):
    def read_flags(self, prefix: str) -> list[tuple[str, bytes]]:
        """(name, serialized flipper item) of every flag whose name starts with `prefix`, in one statement, so
        that a snapshot never mixes two edits."""


class RoutingEdit(FlagReader, Protocol):
    """One routing edit: a transaction under the edit lock; what it writes commits together or not at all."""

    def upsert_flag(self, name: str, item: bytes) -> None: ...

    def delete_flags(self, names: Iterable[str]) -> None: ...

    def insert_history(self, *, actor: str, action: str, job_name: str | None, detail: Mapping[str, Any],
                       before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[int, datetime]:
        """Record the change in the same transaction; returns the entry's id and time."""


class RoutingSession(FlagReader, Protocol):
    """The long-lived session of one process's flag cache: opened on first use, reopened on the call after an
    error. Raises BackendUnavailable or SchemaMissing, like the store."""

    def record_seen(self, names: Iterable[str]) -> None: ...

    def report_router(self, token: str, host: str, pid: int, version: int) -> None:
        """This process (`token`, unique per process) applies routing `version`; also its heartbeat."""

    def remove_router(self, token: str) -> None: ...

    def close(self) -> None: ...

    def after_fork(self) -> None:
        """In a forked child: let go of the parent's connection without closing it (closing would end the parent's
        session on the shared socket); the next call opens the child's own."""


class RoutingStore(FlagReader, Protocol):
    """Where routing lives: flags (flipper-client items), the audit log, the job names the router has seen, and
    the routers' presence. Errors: BackendUnavailable when unreachable, SchemaMissing before `db migrate`."""

    location: str  # where the store is, for messages (any password masked)

    def edit(self, lock_key: int) -> AbstractContextManager[RoutingEdit]: ...

    def history(self, limit: int) -> list[HistoryRow]:
        """The newest `limit` entries, newest first."""

    def record_seen(self, names: Iterable[str]) -> None: ...

    def seen_jobs(self) -> list[str]: ...

    def routers(self, within_seconds: float) -> list[RouterRow]:
        """Routers heard from in the last `within_seconds` (by the store's clock)."""

    def session(self, timeout: float) -> RoutingSession: ...


