"""Routing flags as flipper-client items in Postgres: one-statement snapshots, serialised edits, and the
in-process cache (CachedFlags) that every routing decision reads without a network round trip."""
from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import psycopg

from adapters.pg_backend import db
from migrator import history, known_jobs, routing_db
from migrator.config import Settings
from migrator.errors import BadInput
from migrator.snapshot import LEGACY, RoutingSnapshot

# The only flipper imports of the toolkit. flipper-client (redis<5, RQ 2 apps) and its fork felipper-client
# (redis>=5, RQ 3 apps) both install the `flipper` module; with neither, `import migrator` still works and
# routing stays legacy, with the install line in the error.
try:
    from flipper.bucketing import ConsistentHashPercentageBucketer, NoOpBucketer, Percentage
    from flipper.contrib.storage import FeatureFlagStoreItem, FeatureFlagStoreMeta
    FLIPPER_MISSING = ""
except ImportError as _exc:  # pragma: no cover - exercised only on an install without either distribution
    FLIPPER_MISSING = str(_exc)

__all__ = ["RoutingSnapshot", "LEGACY", "FlagStore", "CachedFlags", "Change", "job_flag_name"]

log = logging.getLogger("migrator.flags")

FLAG_PREFIX = "migrator_"
ROLLOUT_FLAG = "migrator_rollout"  # the seed's `worker_next` flag: the rollout rule over all job names
JOB_FLAG_PREFIX = "migrator_job_"
NAME_LIMIT = 40  # flipper's PostgreSQL store keys flags by varchar(40)
EDIT_LOCK = 0x6D726F75  # "mrou": pg_advisory_xact_lock key that serialises routing edits


def _require_flipper() -> None:
    if FLIPPER_MISSING:
        raise BadInput(f"flipper is not installed ({FLIPPER_MISSING}); pip install 'migrator[rq2]' "
                       "(flipper-client) or 'migrator[rq3]' (felipper-client)")


def job_flag_name(job: str) -> str:
    """The flag key of one job: job names outgrow varchar(40), so the key is a hash of the name; the full
    name travels in the item's client_data."""
    digest = hashlib.sha256(job.encode("utf-8")).hexdigest()
    return JOB_FLAG_PREFIX + digest[:NAME_LIMIT - len(JOB_FLAG_PREFIX)]


def _item(name: str, enabled: bool, client_data: dict[str, Any], bucketer: Any = None) -> bytes:
    meta = FeatureFlagStoreMeta(int(time.time()), client_data, bucketer=bucketer)
    return bytes(FeatureFlagStoreItem(name, enabled, meta).serialize())


def encode_job(job: str, route: str) -> bytes:
    """A per-job flag: enabled = flipped to the new backend, disabled = pinned to the legacy one."""
    return _item(job_flag_name(job), route == "new", {"job": job})


def encode_rollout(s: RoutingSnapshot) -> bytes:
    """The rollout rule in flipper's own terms: enabled without bucketer = every job; enabled with a
    percentage bucketer hashing only the `job` keyword = a percentage of job names (key_whitelist, because
    the bucketer otherwise hashes every keyword a caller passes). No conditions: with conditions present,
    flipper skips the bucketer. migrator itself decides with router.bucket(), exact to 0.01%."""
    bucketer = NoOpBucketer() if s.rollout_all else ConsistentHashPercentageBucketer(
        key_whitelist=["job"], percentage=Percentage(s.percent / 100))
    data = {"version": s.version, "changed_at": s.changed_at.isoformat() if s.changed_at else None}
    return _item(ROLLOUT_FLAG, s.rollout_all or s.threshold > 0, data, bucketer)


def decode(rows: Iterable[tuple[str, bytes]]) -> RoutingSnapshot:
    """The snapshot held by flag rows; enabled/disabled and the bucketer are the truth, as flipper reads them."""
    flipped: set[str] = set()
    pinned: set[str] = set()
    rollout = LEGACY
    for name, raw in rows:
        item = FeatureFlagStoreItem.deserialize(bytes(raw))
        meta = item.meta
        if name == ROLLOUT_FLAG:
            rollout = _decode_rollout(item.raw_is_enabled, meta)
        elif name.startswith(JOB_FLAG_PREFIX):
            (flipped if item.raw_is_enabled else pinned).add(meta["client_data"]["job"])
    return replace(rollout, flipped=frozenset(flipped), pinned=frozenset(pinned))


def _decode_rollout(enabled: bool, meta: dict[str, Any]) -> RoutingSnapshot:
    data = meta.get("client_data") or {}
    changed = datetime.fromisoformat(data["changed_at"]) if data.get("changed_at") else None
    bucketer = meta.get("bucketer") or {}
    everyone = enabled and bucketer.get("type") == NoOpBucketer.get_type()
    value = (bucketer.get("percentage") or {}).get("value") or 0.0
    percent = 100.0 if everyone else round(float(value) * 100, 2) if enabled else 0.0
    return RoutingSnapshot(rollout_all=everyone, percent=percent, version=int(data.get("version", 0)),
                           changed_at=changed)


def validate_percent(percent: float) -> float:
    if not math.isfinite(percent) or not 0 <= percent <= 100:
        raise BadInput(f"--percent must be between 0 and 100, got {percent:g}; e.g. rollout --percent 10")
    return round(percent, 2)


@dataclass(frozen=True, slots=True)
class Change:
    """The outcome of one edit: entry is None when the edit changed nothing (and so was not recorded)."""

    before: RoutingSnapshot
    after: RoutingSnapshot
    entry: history.Entry | None = None


class FlagStore:
    """Routing flags in one database: snapshot() is one statement; each edit is one locked transaction that
    rewrites the items it changes and records the change in the audit log."""

    def __init__(self, url: str, schema: str = "public") -> None:
        _require_flipper()
        self.url, self.schema = url, schema

    @classmethod
    def from_settings(cls, settings: Settings) -> "FlagStore":
        return cls(settings.database_url, settings.schema)

    def snapshot(self) -> RoutingSnapshot:
        with routing_db.connection(self.url) as conn:
            return self.read(conn)

    def read(self, conn: psycopg.Connection[Any]) -> RoutingSnapshot:
        return decode(routing_db.fetch_all(conn, self.schema, "read_flags", {"prefix": FLAG_PREFIX}))

    def flip(self, job: str, by: str | None = None) -> Change:
        return self._edit("flip", job, lambda s: s.with_job(job, "new"), by)

    def pin(self, job: str, by: str | None = None) -> Change:
        return self._edit("pin", job, lambda s: s.with_job(job, "legacy"), by)

    def unflip(self, job: str, by: str | None = None) -> Change:
        return self._edit("unflip", job, lambda s: s.with_job(job, None), by)

    def rollout_percent(self, percent: float, by: str | None = None) -> Change:
        p = validate_percent(percent)
        return self._edit("rollout-percent", None, lambda s: replace(s, rollout_all=False, percent=p), by,
                          {"percent": p})

    def rollout_all(self, by: str | None = None) -> Change:
        return self._edit("rollout-all", None, lambda s: replace(s, rollout_all=True, percent=100.0), by)

    def rollback(self, by: str | None = None) -> Change:
        """Everything back to legacy in one transaction: flips, pins and rollout, one audit entry."""
        return self._edit("rollback", None, lambda _: replace(LEGACY), by)

    def _edit(self, action: str, job: str | None, change: Callable[[RoutingSnapshot], RoutingSnapshot],
              by: str | None, detail: dict[str, Any] | None = None) -> Change:
        with routing_db.connection(self.url) as conn, conn.transaction():
            routing_db.fetch_all(conn, self.schema, "lock_routing", {"key": EDIT_LOCK})
            before = self.read(conn)  # under the lock: no other edit can slip in between read and write
            wanted = change(before)
            if replace(wanted, version=0, changed_at=None) == replace(before, version=0, changed_at=None):
                return Change(before, before)
            after = replace(wanted, version=before.version + 1, changed_at=datetime.now(timezone.utc))
            self._write(conn, before, after)
            entry = history.record(conn, self.schema, actor=by or history.default_actor(), action=action,
                                   job=job, detail=detail or {}, before=before, after=after)
        return Change(before, after, entry)

    def _write(self, conn: psycopg.Connection[Any], before: RoutingSnapshot, after: RoutingSnapshot) -> None:
        gone = (before.flipped | before.pinned) - (after.flipped | after.pinned)
        if gone:
            routing_db.fetch_all(conn, self.schema, "delete_flags", {"names": [job_flag_name(j) for j in gone]})
        changed = [(j, "new") for j in after.flipped - before.flipped]
        changed += [(j, "legacy") for j in after.pinned - before.pinned]
        for job, route in sorted(changed):
            routing_db.fetch_all(conn, self.schema, "upsert_flag",
                                 {"name": job_flag_name(job), "item": encode_job(job, route)})
        # Rewritten on every edit: it carries the version that readers and the audit log go by.
        routing_db.fetch_all(conn, self.schema, "upsert_flag", {"name": ROLLOUT_FLAG, "item": encode_rollout(after)})


class CachedFlags:
    """This process's routing snapshot. snapshot() is an attribute read; a daemon thread re-reads the store
    every `refresh_seconds`, so a change reaches this process within one period plus one read. When the store
    cannot be read the last known snapshot stays; when none was ever read, every job routes legacy."""

    def __init__(self, store: FlagStore, refresh_seconds: float = 1.0) -> None:
        self.store = store
        self.refresh_seconds = max(0.05, refresh_seconds)  # 0 would spin the refresher
        self._snapshot = LEGACY
        self.known = False  # True once a snapshot was read from the store
        self.read_at: float | None = None  # time.monotonic() of the last good read
        self._failing = False
        self._conn: psycopg.Connection[Any] | None = None
        self._seen: set[str] = set()
        self._unsaved: set[str] = set()
        self._lock = threading.Lock()  # guards the seen-name buffers
        self._reading = threading.Lock()  # one read at a time on the one connection
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._forked = False
        self._inherited: list[Any] = []
        _FORK_WATCH.add(self)

    @classmethod
    def from_settings(cls, settings: Settings) -> "CachedFlags":
        return cls(FlagStore.from_settings(settings), settings.flag_cache_seconds)

    def start(self) -> "CachedFlags":
        """Read once now (so the first decisions use real flags when the store answers), then in the background."""
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="migrator-flags", daemon=True)
        self._thread.start()
        return self

    def snapshot(self) -> RoutingSnapshot:
        if self._forked:  # a forked child (RQ work horse, preforking web server) has no refresher thread
            self._restart_after_fork()
        return self._snapshot

    def record_seen(self, names: Iterable[str]) -> None:
        """Note job names the router routed; new ones are upserted by the refresher, off the hot path."""
        for name in names:
            if name not in self._seen:
                with self._lock:
                    self._seen.add(name)
                    self._unsaved.add(name)

    def refresh(self) -> bool:
        """One read of the store (and a flush of newly seen names); False when the store could not be read."""
        with self._reading:
            return self._refresh()

    def _refresh(self) -> bool:
        try:
            conn = self._connection()
            with routing_db.translated(self.store.url):
                snapshot = self.store.read(conn)
                self._flush_seen(conn)
        except Exception as exc:  # any failure keeps the last known routing; the thread must not die
            self._drop_connection()
            self._report_failure(exc)
            return False
        self._snapshot, self.known, self.read_at = snapshot, True, time.monotonic()
        if self._failing:
            log.info("flag store %s reachable again; routing version %d", db.masked(self.store.url),
                     snapshot.version)
            self._failing = False
        return True

    def close(self) -> None:
        """Stop refreshing; job names seen since the last refresh are saved first (a short-lived process, a
        script that enqueues and exits, would otherwise never make its jobs known)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        if self._unsaved:
            try:
                with self._reading, routing_db.translated(self.store.url):
                    self._flush_seen(self._connection())
            except Exception as exc:  # best effort: the names are seen again next time
                log.warning("could not save %d seen job names: %s", len(self._unsaved), exc)
        self._drop_connection()

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            self.refresh()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = db.connect(self.store.url, application_name="migrator-flags",
                                    timeout=max(1.0, self.refresh_seconds))
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def _flush_seen(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            batch, self._unsaved = self._unsaved, set()
        try:
            known_jobs.record_seen(conn, self.store.schema, batch)
        except Exception:
            with self._lock:
                self._unsaved |= batch  # retried at the next refresh
            raise

    def _report_failure(self, exc: BaseException) -> None:
        if self._failing:
            return  # logged once per outage, not once per refresh
        self._failing = True
        where = db.masked(self.store.url)
        if self.known:
            age = time.monotonic() - (self.read_at or time.monotonic())
            log.warning("flag store %s unreadable (%s); keeping the last known routing, version %d read %.1fs ago",
                        where, exc, self._snapshot.version, age)
        else:
            log.error("flag store %s unreadable (%s) and never read: every job routes to the legacy backend "
                      "until it answers", where, exc)

    def _restart_after_fork(self) -> None:
        with self._lock:
            if not self._forked:
                return
            self._forked = False
            # The parent's connection shares its socket with us: never close it here (that would end the
            # parent's session), just keep it referenced so garbage collection does not close it either.
            self._inherited.append(self._conn)
            self._conn, self._stop = None, threading.Event()
            self._thread = threading.Thread(target=self._run, name="migrator-flags", daemon=True)
        self._thread.start()

    def _mark_forked(self) -> None:
        self._forked = self._thread is not None and not self._stop.is_set()
        # Locks held by another thread at fork time would never be released in the child.
        self._lock, self._reading = threading.Lock(), threading.Lock()


_FORK_WATCH: "weakref.WeakSet[CachedFlags]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cached in list(_FORK_WATCH):
        cached._mark_forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
