"""RQ -> Postgres: claim not-started jobs out of RQ in one Lua step per chunk, land them in Postgres with a marker
that outlives the job, then clean up; a re-run settles what a killed run held (docs/transfer.md)."""
from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from adapters.base import JobBackend, JobRefused, JobSpec, JobState, PendingJob
from adapters.pg_backend import transfer as pg_side
from adapters.pg_backend.backend import PostgresBackend
from adapters.rq_backend import RQBackend
from adapters.rq_backend import decode
from adapters.rq_backend import transfer as rq_side
from migrator.transfer.values import CHUNK, Progress, Tally, chunks, recover


def move(legacy: RQBackend, new: PostgresBackend, tally: Tally, job_name: str | None, dry_run: bool,
                 progress: Progress, chunk: int | None = None) -> None:
    recover(tally, dry_run, rq_side.held(legacy), lambda held: _settle_from_rq(legacy, new, held, tally),
             lambda: pg_side.sweep_landed(new, rq_side.held_ids(legacy)))
    sources = [s for q in legacy.queues() for s in rq_side.sources(legacy, q)]
    sources.sort(key=lambda s: s.state is JobState.DEFERRED)  # parents move before their dependents
    snapshots = [(s, rq_side.snapshot(legacy, s)) for s in sources]
    size = chunk or CHUNK
    work = [(s, page) for s, ids in snapshots for page in chunks(ids, size, edge=size // 5)]
    total, done = sum(len(ids) for _, ids in snapshots), 0
    progress(0, total)
    with _Lander(legacy, new, tally) as lander:
        if job_name is None and not dry_run:
            _move_all(legacy, work, tally, lander, progress, total)  # type: ignore[arg-type]
            return
        for source, page in work:
            _move_chosen(legacy, new, source, page, tally, job_name, dry_run, lander)  # type: ignore[arg-type]
            done += len(page)
            progress(done, total)


def _move_all(legacy: RQBackend, work: Sequence[tuple[rq_side.Source, Sequence[tuple[str, float | None]]]],
              tally: Tally, lander: "_Lander", progress: Progress, total: int) -> None:
    """Nothing to choose: each chunk is claimed at once, and decided on what we hold (one read). The next chunk's
    claim scripts are queued before this chunk's replies are decoded: Redis claims while Python decodes and lands
    (one chunk more held at a time)."""
    def start(i: int) -> Callable[[], rq_side.Claimed]:
        source, page = work[i]
        return rq_side.start_claim(legacy, source, [job_id for job_id, _ in page], lander.claims)

    claims, done = [start(0)] if work else [], 0
    for i, (_, page) in enumerate(work):
        if i + 1 < len(work):
            claims.append(start(i + 1))
        _sort_claimed(claims.pop(0)(), tally, len(page), lander)
        done += len(page)
        progress(done, total)


class _Lander:
    """The threads that keep Redis, Postgres and Python working at the same time during a move: `claims` runs
    claim scripts one after another (the next chunk's while the caller decodes this one's); a claimed chunk lands
    (step 2) on a thread of its own while the next chunk is claimed, and is cleaned up (steps 3-4) on a third while
    the next one lands. One chunk per stage, in order (a dependent's chunk lands after its parents'); a stage's
    failure surfaces when the next chunk is handed over, or at the end. A kill at any instant leaves at most four
    chunks held: a re-run settles them like any other."""

    def __init__(self, legacy: RQBackend, new: PostgresBackend, tally: Tally) -> None:
        self.legacy, self.new, self.tally = legacy, new, tally
        self.claims = ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrator-transfer-claim")
        self._lands = ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrator-transfer-land")
        self._cleans = ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrator-transfer-clean")
        self._landing: Future[None] | None = None
        self._cleaning: Future[None] | None = None

    def settle(self, held: Sequence[PendingJob]) -> None:
        self.wait()
        self._landing = self._lands.submit(self._land, held)

    def _land(self, held: Sequence[PendingJob]) -> None:
        ids = _land_held(self.legacy, self.new, held, self.tally)
        self._wait_cleaning()  # one chunk cleaned up at a time, and its failure surfaces
        self._cleaning = self._cleans.submit(_clean_up, self.legacy, self.new, ids)

    def wait(self) -> None:
        """Until the chunk handed over last has landed (raising what it raised)."""
        pending, self._landing = self._landing, None
        if pending is not None:
            pending.result()

    def _wait_cleaning(self) -> None:
        pending, self._cleaning = self._cleaning, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> "_Lander":
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self.wait()
                self._wait_cleaning()
        finally:
            for pool in (self.claims, self._lands, self._cleans):
                pool.shutdown(wait=True)


def _move_chosen(legacy: RQBackend, new: PostgresBackend, source: rq_side.Source,
                 page: Sequence[tuple[str, float | None]], tally: Tally, job_name: str | None, dry_run: bool,
                 lander: _Lander) -> None:
    """One chunk of a move of one job name, or of a dry run: read, choose, then claim what was chosen."""
    lander.wait()  # what is in Postgres decides (a job's parents): the chunk before must have landed
    jobs = [(j, deps) for j, deps in rq_side.read(legacy, source, page) if job_name is None or j.spec.job_name == job_name]
    parents = {p for j, _ in jobs for p in j.spec.depends_on}
    in_postgres = pg_side.existing_ids(new, sorted(parents))
    movable: list[str] = []
    for job, has_dependents in jobs:
        reason = _refusal_for_postgres(new, job, has_dependents, in_postgres)
        if job.error == decode.GONE:  # a worker ran it (and its hash went) after the snapshot
            tally.missed += 1
        elif reason == _DUE:
            tally.waiting += 1
        else:
            tally.sort(job, reason, dry_run, movable)
    if movable:
        _sort_claimed(rq_side.claim(legacy, source, movable, lander.claims), tally, len(movable), lander)


def _sort_claimed(claimed: rq_side.Claimed, tally: Tally, asked: int, lander: _Lander) -> None:
    """What a claim of `asked` ids found: held (handed to the lander), waited on, due, or missed."""
    for job in claimed.waited_on:
        tally.refuse(job, _WAITED_ON)
    tally.waiting += claimed.due
    tally.missed += asked - len(claimed.held) - len(claimed.waited_on) - claimed.due
    lander.settle(claimed.held)


_DUE = "due"
_WAITED_ON = "other jobs in rq wait on it (depends_on): let it run on rq"


def _refusal_for_postgres(new: JobBackend, job: PendingJob, has_dependents: bool, in_postgres: set[str]) -> str | None:
    """Why Postgres cannot take this job now (None: it can). _DUE: a scheduled job about to be enqueued by RQ."""
    return _rule_refusal(job, has_dependents, in_postgres) or new.refusal(job.spec)


def _rule_refusal(job: PendingJob, has_dependents: bool, in_postgres: set[str]) -> str | None:
    """_refusal_for_postgres short of asking the backend whether it can carry the job (which costs an encoding of
    the payload: a batch of held jobs leaves that to the insert, see _land)."""
    if job.error:
        return job.error
    if has_dependents:
        return _WAITED_ON
    missing = [p for p in job.spec.depends_on if p not in in_postgres]
    if missing:
        return f"it waits on job {missing[0]}, which is still in rq: let it run on rq"
    if job.spec.run_at is not None and job.state is not JobState.DEFERRED:
        if job.spec.run_at <= datetime.now(timezone.utc) + timedelta(seconds=rq_side.SCHEDULER_MARGIN):
            return _DUE
    return None


def _settle_from_rq(legacy: RQBackend, new: PostgresBackend, claimed: Sequence[PendingJob], tally: Tally) -> int:
    """Steps 2-4 for jobs in our holding hash; gives back to RQ what Postgres cannot take. Returns jobs moved."""
    ids = _land_held(legacy, new, claimed, tally)
    _clean_up(legacy, new, ids)
    return len(ids)


def _land_held(legacy: RQBackend, new: PostgresBackend, claimed: Sequence[PendingJob], tally: Tally) -> list[str]:
    """Step 2 for jobs in our holding hash, and what Postgres cannot take given back to RQ. Returns the ids in
    Postgres now, counted as moved: their clean-up is next (_clean_up)."""
    gone = [j.spec.job_id or "" for j in claimed if j.error == decode.GONE]
    rq_side.finish(legacy, gone)  # expired (ttl) while held: RQ would have dropped them too
    keep, back = [], []
    in_postgres = pg_side.existing_ids(new, sorted({p for j in claimed for p in j.spec.depends_on}))
    for job in claimed:
        if job.error == decode.GONE:
            continue
        reason = _rule_refusal(job, False, in_postgres)
        if reason and reason != _DUE:
            tally.refuse(job, reason)
            back.append(job.spec.job_id or "")
        else:
            keep.append(job)
    keep, done, conflicts = _land(new, keep, tally, back)
    for job in keep:
        if job.spec.job_id in conflicts:
            tally.refuse(job, "postgres already has a different job with this id")
    rq_side.release(legacy, back + sorted(conflicts))
    tally.moved.update((j.spec.job_name, j.state) for j in keep if j.spec.job_id in done)
    return [j.spec.job_id or "" for j in keep if j.spec.job_id in done]


def _clean_up(legacy: RQBackend, new: PostgresBackend, ids: list[str]) -> None:
    """Steps 3-4: the moved jobs deleted from RQ and from our holding hash, then their markers dropped."""
    rq_side.finish(legacy, ids)
    pg_side.forget_landed(new, ids)


def _land(new: PostgresBackend, keep: list[PendingJob], tally: Tally, back: list[str]
          ) -> tuple[list[PendingJob], set[str], set[str]]:
    """Land the kept jobs; when one of them cannot be carried (the insert encodes each payload once, and refuses
    the whole batch), ask the backend about each, refuse those (adding them to `back`) and land the rest."""
    try:
        return keep, *(pg_side.land(new, [_for_postgres(j) for j in keep]) if keep else (set(), set()))
    except JobRefused:
        pass
    carried = []
    for job in keep:
        reason = new.refusal(job.spec)
        if reason:
            tally.refuse(job, reason)
            back.append(job.spec.job_id or "")
        else:
            carried.append(job)
    return carried, *(pg_side.land(new, [_for_postgres(j) for j in carried]) if carried else (set(), set()))


def _for_postgres(job: PendingJob) -> JobSpec:
    """A queued job keeps its place in line: it runs after jobs enqueued before it, wherever they are."""
    spec = job.spec
    if spec.run_at is None and not spec.depends_on and job.enqueued_at is not None:
        # dataclasses.replace, without its per-field checks: a third of the time, for every queued job moved
        fields = list(_SPEC_FIELDS(spec))
        fields[_RUN_AT] = job.enqueued_at
        return JobSpec(*fields)
    return spec


_SPEC_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(JobSpec)))
_RUN_AT = [f.name for f in dataclasses.fields(JobSpec)].index("run_at")


