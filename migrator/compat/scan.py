"""`compat scan`: every pending payload of the given backends tested against the code now, without running a job:
does its function import, do its args and kwargs bind, and (for jobs waiting in RQ) can the new backend carry it.
Pickled payloads (pickle_payloads) are counted: the new backend's are never unpickled here, so their arguments are
not bound, and one of a job the configuration does not opt in fails (its workers would refuse it)."""
from __future__ import annotations

import inspect
import reprlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters import payload
from adapters.base import BackendName, JobBackend, JobRefused, JobSpec, JobState, PendingJob, PickleOptIn
from migrator.compat.signatures import Unresolvable, resolve
from migrator.routing.router import REFUSED_META

EXAMPLES = 3  # failing payloads shown per job name
SCANNED_STATES = frozenset({JobState.QUEUED, JobState.SCHEDULED, JobState.DEFERRED, JobState.RETRYING})
_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlist, _short.maxdict, _short.maxlevel = 24, 24, 4, 4, 2

Refusal = Callable[[JobSpec], str | None]
NOT_OPTED_IN = "pickled, but pickle_payloads does not opt this job in: workers configured so refuse it unread"


@dataclass(frozen=True, slots=True)
class Example:
    """One failing payload, its values cut short: enough to recognise it, never a secret in full."""

    backend: BackendName
    job_id: str | None
    state: JobState
    call: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend.value, "id": self.job_id, "state": self.state.value, "call": self.call,
                "reason": self.reason}


@dataclass(frozen=True, slots=True)
class JobScan:
    job_name: str
    seen: int
    failing: int
    reasons: tuple[tuple[str, int], ...]  # (reason, payloads), most frequent first
    examples: tuple[Example, ...]
    by_backend: tuple[tuple[BackendName, int], ...] = ()  # payloads seen per backend
    refused_at_enqueue: int = 0  # payloads the router sent to RQ because the new backend refused them
    pickled: int = 0  # payloads pickled on the new backend, or that would travel pickled there (pickle_payloads)

    @property
    def ok(self) -> bool:
        return self.failing == 0

    def to_json(self) -> dict[str, Any]:
        return {"job": self.job_name, "seen": self.seen, "failing": self.failing,
                "by_backend": {b.value: n for b, n in self.by_backend}, "refused_at_enqueue": self.refused_at_enqueue,
                "pickled": self.pickled,
                "reasons": [{"reason": r, "payloads": n} for r, n in self.reasons],
                "examples": [e.to_json() for e in self.examples]}


@dataclass(frozen=True, slots=True)
class ScanReport:
    backends: tuple[BackendName, ...]
    jobs: tuple[JobScan, ...]
    job_name: str | None = None
    pickles: PickleOptIn = PickleOptIn()

    @property
    def seen(self) -> int:
        return sum(j.seen for j in self.jobs)

    @property
    def failing(self) -> int:
        return sum(j.failing for j in self.jobs)

    @property
    def ok(self) -> bool:
        return self.failing == 0

    @property
    def pickled(self) -> int:
        return sum(j.pickled for j in self.jobs)

    def failing_jobs(self) -> tuple[JobScan, ...]:
        return tuple(j for j in self.jobs if not j.ok)

    def summary(self) -> str:
        text = self._verdict()
        if self.pickled or self.pickles:
            text += (f"; {self.pickled} travel pickled (pickle_payloads opts in {self.pickles.describe()}; the new "
                     "backend's pickled arguments are not unpickled here, so not bound)")
        return text

    def _verdict(self) -> str:
        where = " and ".join(b.value for b in self.backends)
        if self.ok:
            return f"{self.seen} pending payloads in {where}: all bind to the code now"
        worst = self.failing_jobs()[0]
        return (f"{self.failing} of {self.seen} pending payloads in {where} would fail, in "
                f"{len(self.failing_jobs())} jobs; e.g. {worst.job_name}: {worst.reasons[0][0]}")

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "backends": [b.value for b in self.backends], "job": self.job_name,
                "seen": self.seen, "failing": self.failing, "summary": self.summary(), "pickled": self.pickled,
                "pickle_payloads": self.pickles.to_json(), "jobs": [j.to_json() for j in self.jobs]}


def encode_refusal(spec: JobSpec) -> str | None:
    """Whether tagged JSON can carry the arguments: the check when no new backend is at hand."""
    try:
        payload.encode_call(spec.args, dict(spec.kwargs))
    except JobRefused as exc:
        return str(exc)
    return None


@dataclass
class _Tally:
    seen: int = 0
    failing: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[Example] = field(default_factory=list)
    by_backend: Counter[BackendName] = field(default_factory=Counter)
    marked: int = 0
    pickled: int = 0

    def freeze(self, job_name: str) -> JobScan:
        return JobScan(job_name, self.seen, self.failing, tuple(self.reasons.most_common()), tuple(self.examples),
                       tuple(sorted(self.by_backend.items())), self.marked, self.pickled)


class _Binder:
    """The code's signature of each job name, resolved once per scan. Whether a call binds depends only on how
    many positional arguments it passes and which keywords, never on the values: so each call shape is bound
    once, and 20,000 payloads of one job cost a dict lookup each."""

    def __init__(self) -> None:
        self._sigs: dict[str, inspect.Signature | str] = {}
        self._shapes: dict[tuple[str, int, frozenset[Any]], str | None] = {}

    def reason(self, spec: JobSpec) -> str | None:
        key = (spec.job_name, len(spec.args), frozenset(spec.kwargs))
        try:
            return self._shapes[key]
        except KeyError:
            why = self._shapes[key] = self._bind(spec)
            return why

    def _bind(self, spec: JobSpec) -> str | None:
        sig = self._sigs.get(spec.job_name)
        if sig is None:
            sig = self._sigs[spec.job_name] = _signature(spec.job_name)
        if isinstance(sig, str):
            return sig
        try:
            sig.bind(*spec.args, **spec.kwargs)
        except TypeError as exc:
            return f"does not bind: {exc}"
        return None


class _Carrier:
    """The new backend's refusal(), asked once per payload shape. Tagged JSON refuses by the type of each value
    (and NaN), the backend by which options are set: two payloads with the same types in the same places, the
    same dict keys and the same options get the same answer. Large or odd payloads are always asked."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal
        self._known: dict[Any, str | None] = {}

    def reason(self, spec: JobSpec) -> str | None:
        key = _key(spec)
        if key is None:
            return self.refusal(spec)
        try:
            return self._known[key]
        except KeyError:
            why = self._known[key] = self.refusal(spec)
            return why


def _key(spec: JobSpec) -> Any:
    shapes = (_shape(spec.args), _shape(spec.kwargs), _shape(spec.meta))
    if any(s is _TOO_BIG for s in shapes):
        return None
    naive = spec.run_at is not None and spec.run_at.tzinfo is None
    return (*shapes, bool(spec.on_success), bool(spec.on_failure), naive)


_TOO_BIG = object()  # a container too large to be worth a cache key: ask the backend
_SHAPE_ITEMS = 16


_SCALARS = frozenset({str, int, bool, type(None)})


def _shape(value: Any, depth: int = 0) -> Any:
    kind = type(value)
    if kind in _SCALARS:  # most values: answered first
        return kind
    if kind is float:
        return "nan" if value != value else float
    if kind in (list, tuple, set, frozenset):
        if len(value) > _SHAPE_ITEMS or depth > 3:
            return _TOO_BIG
        items = tuple(_shape(v, depth + 1) for v in value)
        return _TOO_BIG if any(i is _TOO_BIG for i in items) else (kind, items)
    if kind is dict:
        if len(value) > _SHAPE_ITEMS or depth > 3 or not all(type(k) is str for k in value):
            return _TOO_BIG
        pairs = tuple((k, _shape(v, depth + 1)) for k, v in value.items())
        return _TOO_BIG if any(v is _TOO_BIG for _, v in pairs) else (kind, pairs)
    return kind


def _signature(job_name: str) -> inspect.Signature | str:
    try:
        return inspect.signature(resolve(job_name))
    except Unresolvable as exc:
        return f"function does not import: {exc}"
    except (ValueError, TypeError) as exc:
        return f"signature cannot be read: {exc}"


def scan_payloads(backends: Sequence[JobBackend], job_name: str | None = None,
                  carrier: JobBackend | None = None, pickles: PickleOptIn = PickleOptIn()) -> ScanReport:
    """Every pending payload of `backends` (of one job name when given). Payloads waiting in RQ are also offered
    to the new backend's refusal(): `carrier`, else the Postgres backend among `backends`, else tagged JSON.
    `pickles` is the configuration's pickle_payloads."""
    carrier = carrier or next((b for b in backends if b.name is BackendName.POSTGRES), None)
    carry = _Carrier(carrier.refusal if carrier is not None else encode_refusal)
    binder = _Binder()
    tallies: dict[str, _Tally] = {}
    for backend in backends:
        carried = backend.name is BackendName.RQ
        for job in backend.iter_pending(None, job_name):
            if job.state not in SCANNED_STATES:
                continue  # a started job's payload has bound already
            tally = tallies.get(job.spec.job_name)
            if tally is None:
                tally = tallies[job.spec.job_name] = _Tally()
            tally.seen += 1
            tally.by_backend[backend.name] += 1
            tally.marked += REFUSED_META in job.spec.meta
            if job.pickled:  # never unpickled here: only a worker that opts the job in reads it
                tally.pickled += 1
                why = None if pickles.covers(job.spec.job_name) else NOT_OPTED_IN
            else:
                why = _reason(job, binder, carry if carried else None)
                tally.pickled += carried and why is None and _travels_pickled(job.spec, pickles)
            if why is not None:
                _fail(tally, backend.name, job, why)
    jobs = sorted((t.freeze(name) for name, t in tallies.items()), key=lambda j: (j.ok, j.job_name))
    return ScanReport(tuple(b.name for b in backends), tuple(jobs), job_name, pickles)


def _travels_pickled(spec: JobSpec, pickles: PickleOptIn) -> bool:
    """An RQ payload the new backend would carry pickled: opted in, and tagged JSON refuses its arguments."""
    return pickles.covers(spec.job_name) and encode_refusal(spec) is not None


def _reason(job: PendingJob, binder: _Binder, carry: _Carrier | None) -> str | None:
    if job.error is not None:
        return f"undecodable: {job.error}"
    why = binder.reason(job.spec)
    if why is None and carry is not None:
        refused = carry.reason(job.spec)
        if refused is not None:
            why = f"the new backend cannot carry it: {refused}"
    return why


def _fail(tally: _Tally, backend: BackendName, job: PendingJob, why: str) -> None:
    tally.failing += 1
    tally.reasons[why] += 1
    if len(tally.examples) < EXAMPLES:
        tally.examples.append(Example(backend, job.spec.job_id, job.state, describe_call(job.spec), why))


def describe_call(spec: JobSpec) -> str:
    """`name(arg, key=value)` with every value cut short by reprlib."""
    parts = [_short.repr(a) for a in spec.args] + [f"{k}={_short.repr(v)}" for k, v in spec.kwargs.items()]
    text = ", ".join(parts)
    return f"{spec.job_name.rsplit('.', 1)[-1]}({text if len(text) <= 120 else text[:119] + '…'})"
