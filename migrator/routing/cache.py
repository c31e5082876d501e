"""CachedFlags: this process's routing snapshot, refreshed by a daemon thread, so that a routing decision is an
attribute read; it also batches the job names the router has seen and reports the version it applies (presence).
Survives forks (RQ work horses, preforking web servers) by restarting its thread in the child."""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Iterable

from migrator.routing import presence
from migrator.routing.flag_store import FlagStore
from migrator.routing.snapshot import LEGACY, RoutingSnapshot

log = logging.getLogger("migrator.flags")


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
        self._session = store.tables.session(timeout=max(1.0, self.refresh_seconds))
        self._token = uuid.uuid4().hex  # this process in the routers' presence table (pids repeat)
        self._reported: tuple[int, float] | None = None  # (version, time.monotonic()) of the last report
        self._born = time.monotonic()  # of this process (reset in a forked child): see _report_presence
        self._presence_failing = False
        self._seen: set[str] = set()
        self._unsaved: set[str] = set()
        self._lock = threading.Lock()  # guards the seen-name buffers
        self._reading = threading.Lock()  # one read at a time on the one connection
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._forked = False
        _FORK_WATCH.add(self)

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
            snapshot = self.store.read(self._session)
            self._flush_seen()
        except Exception as exc:  # any failure keeps the last known routing; the thread must not die
            self._report_failure(exc)
            return False
        self._snapshot, self.known, self.read_at = snapshot, True, time.monotonic()
        if self._failing:
            log.info("flag store %s reachable again; routing version %d", self.store.tables.location,
                     snapshot.version)
            self._failing = False
        self._report_presence(snapshot.version)
        return True

    def _report_presence(self, version: int) -> None:
        """Tell the store which version this process applies: at once when it changed, else as a heartbeat.
        Routing never depends on it: a failure is logged once and the snapshot stays applied.

        A process reports once it has routed for REPORT_EVERY seconds. A younger one read the routing when it
        started, so it lags no change by more than its age; and short-lived processes (an RQ work horse per job,
        a script) then write no row, since one that exits without close() would linger until pruned."""
        now = time.monotonic()
        if now - self._born < presence.REPORT_EVERY:
            return
        if self._reported is not None:
            last_version, last_at = self._reported
            if last_version == version and now - last_at < presence.REPORT_EVERY:
                return
        try:
            self._session.report_router(self._token, socket.gethostname(), os.getpid(), version)
        except Exception as exc:  # a schema without the routers table (not migrated yet), a dropped connection
            if not self._presence_failing:
                log.warning("could not report this router's routing version to %s: %s",
                            self.store.tables.location, exc)
            self._presence_failing = True
            return
        self._reported, self._presence_failing = (version, now), False

    def close(self) -> None:
        """Stop refreshing; job names seen since the last refresh are saved first (a short-lived process, a
        script that enqueues and exits, would otherwise never make its jobs known)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        with self._reading:
            if self._unsaved:
                try:
                    self._flush_seen()
                except Exception as exc:  # best effort: the names are seen again next time
                    log.warning("could not save %d seen job names: %s", len(self._unsaved), exc)
            if self._reported is not None:
                try:  # leave the routers' table at once rather than after the drop-out bound
                    self._session.remove_router(self._token)
                except Exception as exc:  # best effort: the row drops out of live_routers after the bound
                    log.debug("could not remove this router's presence: %s", exc)
                self._reported = None
            self._session.close()

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            self.refresh()

    def _flush_seen(self) -> None:
        with self._lock:
            batch, self._unsaved = self._unsaved, set()
        if not batch:
            return
        try:
            self._session.record_seen(batch)
        except Exception:
            with self._lock:
                self._unsaved |= batch  # retried at the next refresh
            raise

    def _report_failure(self, exc: BaseException) -> None:
        if self._failing:
            return  # logged once per outage, not once per refresh
        self._failing = True
        where = self.store.tables.location
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
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="migrator-flags", daemon=True)
        self._thread.start()

    def _mark_forked(self) -> None:
        self._forked = self._thread is not None and not self._stop.is_set()
        # Locks held by another thread at fork time would never be released in the child.
        self._lock, self._reading = threading.Lock(), threading.Lock()
        # The parent's connection shares its socket with us: the session lets go of it without closing it, and
        # the child opens its own. The child is another router: its own token, reported at its first refresh.
        self._session.after_fork()
        self._token, self._reported, self._born = uuid.uuid4().hex, None, time.monotonic()


_FORK_WATCH: "weakref.WeakSet[CachedFlags]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cached in list(_FORK_WATCH):
        cached._mark_forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
