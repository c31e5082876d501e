"""The Router: hands each job to the backend its routing names at enqueue time (wiring builds it from settings)."""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from contextvars import ContextVar
from typing import Any, TypeVar

from adapters.base import BackendName, BackendUnavailable, Enqueued, JobBackend, JobInfo, JobRefused, JobSpec
from migrator.routing.breaker import Breaker
from migrator.routing.cache import CachedFlags
from migrator.routing.decide import Route, decide
from migrator.routing.in_doubt import Doubts

T = TypeVar("T")
# The app's own database connection while it enqueues inside its transaction (Queue.transaction): jobs routed to the
# new backend are written on it, and exist only if the app's transaction commits.
APP_TRANSACTION: ContextVar[Any] = ContextVar("migrator_app_transaction", default=None)
log = logging.getLogger("migrator.router")
REMEMBERED_IDS = 10_000  # recent job ids whose backend a dependent job can follow without a lookup
FALLBACKS: Counter[BackendName] = Counter()  # jobs sent to the other backend because theirs was unreachable
# Jobs routed to the new backend that it could not carry (a payload value or option), sent to RQ instead: per job
# name, in this process. `migrator status`/`drain-check` show them; the compat gate counts them before a flip.
REFUSED: Counter[str] = Counter()
FALLBACK_META = "migrator_fallback"  # meta key of a job sent to the other backend: {"from": ..., "reason": ...}
REFUSED_META = "migrator_refused"  # meta key of such a job in RQ: {"from": "postgres", "reason": "..."}
REFUSAL_LOG_SECONDS = 60.0  # at most one warning per job name per minute: an app may enqueue thousands a second
_refusal_logged: dict[str, float] = {}
_refusal_lock = threading.Lock()


class Router:
    """Hands each job to the backend its flags name at enqueue time; the app's one entry point."""

    def __init__(self, legacy: JobBackend, new: JobBackend, flags: CachedFlags, fallback: bool = False) -> None:
        self.backends = {BackendName.RQ: legacy, BackendName.POSTGRES: new}
        self.flags = flags
        self.fallback = fallback  # opt-in: an unreachable chosen backend sends the job to the other one
        self._placed: OrderedDict[str, BackendName] = OrderedDict()  # recent job ids -> backend, for depends_on
        self._placed_lock = threading.Lock()
        self.doubts = Doubts(self.backends)  # fallback copies held until their first backend says if it has them
        self.breakers = {name: Breaker(name, backend.ping, partial(self.doubts.settle, name))
                         for name, backend in self.backends.items()
                         if backend is not None}  # no legacy backend: a router for the new backend alone

    def decide(self, job_name: str) -> Route:
        return decide(job_name, self.flags.snapshot())

    def enqueue(self, spec: JobSpec) -> Enqueued:
        """Enqueue one job where its flags (or its parent, for depends_on) say."""
        route = self._route_for(spec)
        self.flags.record_seen((spec.job_name,))
        app_conn = APP_TRANSACTION.get()
        if app_conn is not None:  # inside the app's transaction: no fallback, no second backend, one outcome
            placed = self.backends[route.backend].enqueue(spec, conn=app_conn)
            self._remember(placed)
            return placed
        spec = self._with_id(spec)
        try:
            placed = self._enqueue_on(route.backend, spec)
        except BackendUnavailable as exc:
            placed = self._fall_back(spec, route.backend, exc)
        except JobRefused as exc:
            placed = self._refused(spec, route.backend, exc)
        self._remember(placed)
        return placed

    def enqueue_many(self, specs: list[JobSpec]) -> list[Enqueued]:
        """Enqueue many jobs, one batch per backend, results in the order given."""
        groups: dict[BackendName, list[int]] = {}
        for i, spec in enumerate(specs):
            groups.setdefault(self._route_for(spec).backend, []).append(i)
        self.flags.record_seen({s.job_name for s in specs})
        out: list[Enqueued | None] = [None] * len(specs)
        for name, indexes in groups.items():
            batch = [self._with_id(specs[i]) for i in indexes]
            try:
                placed = self._guarded(name, lambda: self.backends[name].enqueue_many(batch))
            except BackendUnavailable as exc:
                placed = [self._fall_back(s, name, exc) for s in batch]
            except JobRefused as exc:  # the batch is all or nothing: enqueue its jobs one by one instead
                if not self._may_refuse(name):
                    raise exc
                placed = [self._one_or_legacy(s, name) for s in batch]
            for i, one in zip(indexes, placed):
                out[i] = one
                self._remember(one)
        return [o for o in out if o is not None]

    def fetch_job(self, backend: BackendName, job_id: str) -> JobInfo | None:
        return self.backends[backend].fetch_job(job_id)

    def close(self) -> None:
        for breaker in self.breakers.values():
            breaker.close()
        self.flags.close()
        for backend in self.backends.values():
            close = getattr(backend, "close", None)
            if close:
                close()

    def _with_id(self, spec: JobSpec) -> JobSpec:
        """With fallback on, a job gets its id before the first try: an enqueue in doubt is settled by id."""
        if self.fallback and spec.job_id is None:
            return replace(spec, job_id=str(uuid.uuid4()))
        return spec

    def _route_for(self, spec: JobSpec) -> Route:
        if spec.depends_on:
            parent = self._parent_backend(spec.depends_on[0])
            if parent is not None:
                return Route(parent, "follows its parent")
        return self.decide(spec.job_name)

    def _parent_backend(self, job_id: str) -> BackendName | None:
        """A dependent job goes where its parent went: remembered in this process, else looked up."""
        with self._placed_lock:
            known = self._placed.get(job_id)
        if known is not None:
            return known
        for name in (BackendName.POSTGRES, BackendName.RQ):
            if self.backends[name].fetch_job(job_id) is not None:
                return name
        return None

    def _remember(self, placed: Enqueued) -> None:
        with self._placed_lock:
            self._placed[placed.job_id] = placed.backend
            if len(self._placed) > REMEMBERED_IDS:
                self._placed.popitem(last=False)

    def _may_refuse(self, chosen: BackendName) -> bool:
        """A refusal of the new backend goes to RQ while RQ is configured; otherwise it is the app's error."""
        return chosen is BackendName.POSTGRES and self.backends.get(BackendName.RQ) is not None

    def _enqueue_on(self, name: BackendName, spec: JobSpec) -> Enqueued:
        return self._guarded(name, lambda: self.backends[name].enqueue(spec))

    def _guarded(self, name: BackendName, call: Callable[[], T]) -> T:
        """Call a backend unless its outage is known (then fail at once); an unreachable one trips its breaker."""
        breaker = self.breakers.get(name)
        outage = breaker.outage() if breaker is not None else None
        if outage is not None:
            raise outage
        try:
            return call()
        except BackendUnavailable as exc:
            if breaker is not None:
                breaker.trip(exc)
            raise

    def _one_or_legacy(self, spec: JobSpec, chosen: BackendName) -> Enqueued:
        try:
            return self._enqueue_on(chosen, spec)
        except JobRefused as exc:
            return self._refused(spec, chosen, exc)

    def _refused(self, spec: JobSpec, chosen: BackendName, exc: JobRefused) -> Enqueued:
        """Never fail the app for what RQ can carry: the job goes to RQ, counted and marked in its meta."""
        if not self._may_refuse(chosen):
            raise exc
        REFUSED[spec.job_name] += 1
        now = time.monotonic()
        with _refusal_lock:
            last = _refusal_logged.get(spec.job_name)
            due = last is None or now - last >= REFUSAL_LOG_SECONDS
            if due:
                _refusal_logged[spec.job_name] = now
        if due:
            log.warning("%s cannot carry job %s, enqueued on rq instead (%d so far in this process; logged at most "
                        "once a minute): %s", chosen.value, spec.job_name, REFUSED[spec.job_name], exc)
        meta = {**spec.meta, REFUSED_META: {"from": chosen.value, "reason": str(exc)[:200]}}
        return self._enqueue_on(BackendName.RQ, replace(spec, meta=meta))

    def _fall_back(self, spec: JobSpec, chosen: BackendName, exc: BackendUnavailable) -> Enqueued:
        if not self.fallback:
            raise exc
        other = BackendName.RQ if chosen is BackendName.POSTGRES else BackendName.POSTGRES
        FALLBACKS[chosen] += 1
        log.debug("%s unreachable; job %s enqueued on %s instead (fallback policy): %s", chosen.value,
                  spec.job_name, other.value, exc)
        mark: dict[str, Any] = {"from": chosen.value, "reason": str(exc)[:200]}
        if not exc.in_doubt:
            return self._enqueue_on(other, replace(spec, meta={**spec.meta, FALLBACK_META: mark}))
        # `chosen` may have the job after all (its answer was lost): hold this copy until `chosen` answers again.
        mark["in_doubt"] = True
        placed = self._enqueue_on(other, self.doubts.held(replace(spec, meta={**spec.meta, FALLBACK_META: mark})))
        self.doubts.hold(chosen, placed.job_id, other)
        return placed
