"""What the overview shows, read through the domain (routing status, presence, playbook state, compat check) and
the backends' protocol; each part that cannot be read says why instead of failing the page."""
from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from adapters.base import ANY_JOB, PENDING_STATES, BackendError, BackendName, JobInfo, JobState, StateCount, WorkerInfo
from adapters.urls import mask_url, mask_urls_in
from migrator import wiring
from migrator.compat import lockfile
from migrator.compat.check import check_code
from migrator.config import Settings
from migrator.errors import MigratorError
from migrator.playbook import state as playbook_state
from migrator.routing import history, known_jobs, presence
from migrator.routing import status as routing_status
from migrator.routing.decide import Route, bucket, decide
from migrator.routing.presence import RouterPresence
from migrator.routing.snapshot import RoutingSnapshot

T = TypeVar("T")
BACKENDS = (BackendName.RQ, BackendName.POSTGRES)
ARGS_SHOWN = 300  # characters of a job's arguments shown on its page: enough to recognise, never a whole blob


@dataclass(frozen=True, slots=True)
class Tally:
    """One job name's jobs on one backend, as an operator groups them."""

    pending: int = 0
    running: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class JobRow:
    job_name: str
    route: Route
    bucket: int
    tallies: dict[str, Tally]  # backend name -> its jobs of this name (absent: backend unreadable)
    compat: str  # "ok", "not locked", or the breaking changes in a few words


@dataclass(frozen=True, slots=True)
class Health:
    """One backend's runs over the window: what the playbook's health gate judges."""

    backend: BackendName
    runs: int = 0
    failed: int = 0
    p95_wait: float | None = None
    note: str = ""  # what the numbers cover, or why there are none

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.runs if self.runs else None


@dataclass(frozen=True, slots=True)
class PlaybookRow:
    step: playbook_state.CurrentStep
    gates: tuple[dict[str, Any], ...]  # the current step's recorded gate results (name, ok, message, values)


@dataclass(frozen=True, slots=True)
class Overview:
    at: datetime
    snapshot: RoutingSnapshot
    rule: str
    jobs: tuple[JobRow, ...]
    health: tuple[Health, ...]
    workers: tuple[WorkerInfo, ...]
    routers: tuple[RouterPresence, ...]
    playbooks: tuple[PlaybookRow, ...]
    compat: str
    window_minutes: int
    places: dict[str, str]  # backend -> where it is (password masked)
    errors: dict[str, str] = field(default_factory=dict)  # part -> why it could not be read

    @property
    def lagging(self) -> list[RouterPresence]:
        return presence.lagging(self.routers, self.snapshot.version)


class Reader:
    """Collects the parts of the overview; a part whose backend is down records the reason and reads as None."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def part(self, name: str, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except (BackendError, MigratorError) as exc:
            self.errors[name] = mask_urls_in(str(exc))
            return None


@contextlib.contextmanager
def backends(settings: Settings) -> Iterator[dict[BackendName, Any]]:
    """Both backends as wiring builds them, closed after one page."""
    opened: dict[BackendName, Any] = {BackendName.RQ: wiring.rq_backend(settings),
                                      BackendName.POSTGRES: wiring.postgres_backend(settings)}
    try:
        yield opened
    finally:
        for backend in opened.values():
            backend.close()


def tallies(counts: list[StateCount]) -> dict[str, Tally]:
    """Job name -> pending (waiting, scheduled, retrying), running and failed jobs, from one backend's counts."""
    out: dict[str, list[int]] = {}
    for c in counts:
        row = out.setdefault(c.job_name, [0, 0, 0])
        if c.state is JobState.STARTED:
            row[1] += c.count
        elif c.state in PENDING_STATES:
            row[0] += c.count
        elif c.state is JobState.FAILED:
            row[2] += c.count
    return {name: Tally(*row) for name, row in out.items()}


def compat_by_job(settings: Settings) -> tuple[str, dict[str, str]]:
    """`compat check` (code against the lock file): its summary, and each locked job's word: "ok" or its breaking
    changes in a few words (a job the lock does not know is "not locked")."""
    report = check_code(settings)
    words = {name: "ok" for name in lockfile.read(Path(settings.lock_file))}
    problems: dict[str, list[str]] = {}
    for change in report.breaking:
        problems.setdefault(change.job_name, []).append(str(change.kind))
    words.update({job: "breaking: " + ", ".join(kinds) for job, kinds in problems.items()})
    return report.summary(), words


def rq_health(counts: list[StateCount]) -> Health:
    finished = sum(c.count for c in counts if c.state is JobState.FINISHED)
    failed = sum(c.count for c in counts if c.state is JobState.FAILED)
    return Health(BackendName.RQ, finished + failed, failed, None,
                  "RQ's finished and failed registries (kept for result_ttl / failure_ttl); RQ records no wait")


def postgres_health(backend: Any, since: datetime, minutes: int) -> Health:
    stats = backend.run_stats(since)
    return Health(BackendName.POSTGRES, stats.finished + stats.failed, stats.failed, stats.p95_wait,
                  f"runs ended in the last {minutes} min; wait from enqueue to start")


def _counts(backend: Any) -> list[StateCount]:
    # by_job: RQ reads each job's name (the overview lists jobs per name), as `migrator status` does
    return list(backend.counts(by_job=True) if backend.name is BackendName.RQ else backend.counts())


@dataclass
class _Backends:
    counts: dict[BackendName, list[StateCount] | None]
    workers: list[WorkerInfo]
    health: list[Health]
    places: dict[str, str]


def _read_backends(settings: Settings, reader: Reader, since: datetime, minutes: int) -> _Backends:
    with backends(settings) as opened:
        counts = {name: reader.part(str(name), functools.partial(_counts, b)) for name, b in opened.items()}
        workers = [w for name, b in opened.items() if counts[name] is not None
                   for w in reader.part(f"{name} workers", b.workers) or []]
        rq_counts, pg_counts = counts[BackendName.RQ], counts[BackendName.POSTGRES]
        health = [rq_health(rq_counts)] if rq_counts is not None else []
        if pg_counts is not None:
            pg = opened[BackendName.POSTGRES]
            health += reader.part("postgres health", lambda: [postgres_health(pg, since, minutes)]) or []
        places = {str(name): mask_url(b.url) for name, b in opened.items()}
    return _Backends(counts, workers, health, places)


def read_overview(settings: Settings, window_minutes: int = 15) -> Overview:
    reader = Reader()
    now = datetime.now(timezone.utc)
    store = wiring.flag_store(settings)
    snapshot = reader.part("routing", store.snapshot) or RoutingSnapshot()
    known = reader.part("known jobs", lambda: known_jobs.known_jobs(store.tables, settings.job_modules)) or []
    compat_summary, compat = reader.part("compat", lambda: compat_by_job(settings)) or ("not checked", {})
    read = _read_backends(settings, reader, now - timedelta(minutes=window_minutes), window_minutes)
    per_backend = {str(name): tallies(c) for name, c in read.counts.items() if c is not None}
    names = set(known) | snapshot.flipped | snapshot.pinned | {n for t in per_backend.values() for n in t}
    unchecked = "not checked" if compat_summary == "not checked" else "not locked"
    jobs = tuple(JobRow(n, decide(n, snapshot), bucket(n), {b: t.get(n, Tally()) for b, t in per_backend.items()},
                        compat.get(n, unchecked)) for n in sorted(names - {ANY_JOB}))
    routers = reader.part("routers", lambda: presence.live_routers(
        store.tables, presence.drop_out_after(settings.flag_cache_seconds))) or []
    playbooks = reader.part("playbooks", lambda: read_playbooks(settings)) or []
    return Overview(now, snapshot, history.rollout_rule(snapshot), jobs, tuple(read.health), tuple(read.workers),
                    tuple(routers), tuple(playbooks), compat_summary, window_minutes, read.places, reader.errors)


class SharedOverview:
    """At most one read of the backends per `max_age` seconds, however many pages poll: the overview counts RQ's
    jobs per name, which reads every pending job's hash. An action forgets the last read, so its effect shows."""

    def __init__(self, settings: Settings, window_minutes: int, max_age: float) -> None:
        self.settings, self.window_minutes, self.max_age = settings, window_minutes, max_age
        self._lock = threading.Lock()
        self._last: tuple[float, Overview] | None = None

    def get(self) -> Overview:
        with self._lock:  # a second page waits for the read in flight instead of making its own
            if self._last is not None and time.monotonic() - self._last[0] < self.max_age:
                return self._last[1]
            view = read_overview(self.settings, self.window_minutes)
            self._last = (time.monotonic(), view)
            return view

    def forget(self) -> None:
        with self._lock:
            self._last = None


def read_playbooks(settings: Settings) -> list[PlaybookRow]:
    """Every unfinished run and its current step's gate values, as the runner recorded them."""
    state = wiring.playbook_state(settings)
    try:
        rows = []
        for current in playbook_state.current_steps(state):
            step = next((s for s in state.steps(current.run_id) if s.index == current.step), None)
            gates = tuple(g for g in (step.outcome.get("gates", ()) if step else ()) if isinstance(g, dict))
            rows.append(PlaybookRow(current, gates))
        return rows
    finally:
        state.close()


def find_job(settings: Settings, job_id: str) -> tuple[JobInfo, str] | None:
    """A job by id in either backend (the new backend first, as RQ's Job.fetch through migrator looks), and its
    arguments as shown: cut to ARGS_SHOWN characters."""
    with backends(settings) as opened:
        for name in (BackendName.POSTGRES, BackendName.RQ):
            job = opened[name].fetch_job(job_id)
            if job is not None:
                return job, shown_args(job, opened[name])
    return None


def shown_args(job: JobInfo, backend: Any) -> str:
    """The arguments as Python prints them; on RQ read from RQ's own Job (its JobInfo carries no spec)."""
    try:
        if job.spec is not None:
            args, kwargs = job.spec.args, dict(job.spec.kwargs)
        else:
            native = backend.native_job(job.job_id)
            args, kwargs = (tuple(native.args), dict(native.kwargs)) if native is not None else ((), {})
    except Exception as exc:  # a payload the app's serializer cannot read here is still a job to look at
        return f"(the arguments could not be decoded: {type(exc).__name__})"
    text = mask_urls_in(", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]))
    return text if len(text) <= ARGS_SHOWN else text[:ARGS_SHOWN] + f"… ({len(text)} characters)"


def audit_log(settings: Settings, job_name: str | None, limit: int = 200) -> list[history.Entry]:
    """The newest audit entries, of one job name when given (its flips, pins and unflips)."""
    entries = wiring.flag_store(settings).history(limit if not job_name else 10_000)
    if job_name:
        entries = [e for e in entries if e.job_name == job_name][:limit]
    return entries


def status_report(settings: Settings) -> routing_status.StatusReport:
    """`migrator status --json`'s report, for /api/status (scripts and the browser test read routes from it)."""
    store = wiring.flag_store(settings)
    with backends(settings) as opened:
        counters = {name: (lambda b=b: list(b.counts(by_job=True)) if b.name is BackendName.RQ else b.counts())
                    for name, b in opened.items()}
        known = known_jobs.known_jobs(store.tables, settings.job_modules)
        return routing_status.build(store.snapshot(), known, counters)
