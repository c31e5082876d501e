"""The router's memory of an outage (a circuit breaker per backend): once a backend is found unreachable, enqueues
stop waiting on it at once, and one background probe per backend finds when it is back.

Why: a pooled Postgres connection waits out its timeout (seconds) before it says the server is gone, and so does a
Redis behind a dead host; without this, every enqueue of an outage would wait that long again, and an app's
requests would hang through the whole outage. With it, at most the enqueues already in flight when the outage
begins wait; the rest fall back (or fail fast) in microseconds until the probe sees the backend answer again.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable

from adapters.base import BackendName, BackendUnavailable

log = logging.getLogger("migrator.router")
PROBE_FIRST = 0.25  # seconds before the first probe: a blip (a restart) is often over by then
PROBE_MAX = 5.0  # the probe backs off to one attempt every this many seconds


class Breaker:
    """One backend's circuit: closed (try it) or open (fail over at once, a probe thread running)."""

    def __init__(self, backend: BackendName, probe: Callable[[], None],
                 on_back: Callable[[], None] | None = None) -> None:
        self.backend = backend
        self._probe = probe  # raises BackendUnavailable while the backend is down
        self._on_back = on_back  # run by the probe once the backend answers again (settles in-doubt enqueues)
        self._outage: BackendUnavailable | None = None
        self._since = 0.0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        _ALL.add(self)

    def outage(self) -> BackendUnavailable | None:
        """The error of the outage in progress, None when the backend is believed up (an attribute read)."""
        return self._outage

    def trip(self, exc: BackendUnavailable) -> None:
        """The backend failed: remember it, and start the one probe that will find when it is back."""
        with self._lock:
            if self._outage is not None or self._stopped.is_set():
                return
            # What later enqueues fail with: nothing of theirs is sent, so nothing of theirs is in doubt.
            self._outage = BackendUnavailable(exc.backend, exc.url, exc.detail) if exc.in_doubt else exc
            self._since = time.monotonic()
            self._thread = threading.Thread(target=self._run_probe, name=f"migrator-probe-{self.backend}",
                                            daemon=True)
            self._thread.start()
        log.warning("%s is unreachable (%s); enqueues skip it until a probe finds it back", self.backend, exc)

    def close(self) -> None:
        """Stop probing (the router is closing)."""
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(PROBE_MAX + 1)

    def _run_probe(self) -> None:
        wait = PROBE_FIRST
        while not self._stopped.wait(wait):
            try:
                self._probe()
            except Exception as exc:  # still down (BackendUnavailable), or anything else: keep probing
                log.debug("%s still unreachable: %s", self.backend, exc)
                wait = min(PROBE_MAX, wait * 2)
                continue
            with self._lock:
                down_for = time.monotonic() - self._since
                self._outage, self._thread = None, None
            log.warning("%s is reachable again after %.1fs; enqueues go to it again", self.backend, down_for)
            if self._on_back is not None:
                try:
                    self._on_back()
                except Exception:  # never let the probe thread die with a traceback nobody reads
                    log.exception("settling the enqueues in doubt on %s failed", self.backend)
            return

    def _after_fork(self) -> None:
        # The probe thread did not survive the fork: forget the outage, the child's first enqueue finds out anew.
        self._lock = threading.Lock()
        self._outage, self._thread = None, None


_ALL: "weakref.WeakSet[Breaker]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for breaker in list(_ALL):
        breaker._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
