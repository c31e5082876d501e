"""RQ's half of a transfer: claim not-started jobs out of RQ's reach, and land jobs into RQ exactly once.

Claiming is one Lua script per chunk: each job id leaves its queue list or registry and enters our HOLDING hash
in the same atomic step, so either an RQ worker popped it first (we do not get it) or we did (no worker ever
will). RQ's own key names come from RQ's classes; only our two keys are spelled here.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import rq
from redis.exceptions import WatchError

from adapters.base import BackendError, JobSpec, JobState, PendingJob
from adapters.rq_backend import decode
from adapters.rq_backend.holding import HOLDING, LANDED, held_jobs
from adapters.rq_backend.backend import RQBackend

# A scheduled job due within this many seconds is left to RQ's scheduler: its enqueue is not atomic (it reads
# the due ids, then re-saves each job and pushes it), so claiming a due job could let it run on both sides. It
# reaches the queue list within a second or two, where a later pass claims it safely. The margin covers clock
# skew between Redis and the scheduler's host.
SCHEDULER_MARGIN = 10.0
LAND_ATTEMPTS = 5

# KEYS: source, holding, then per job: hash, dependents set. ARGV: kind, min score (or ''), state, n, then n hash
# fields to return, then the job ids. A job is claimed only if its hash exists (an expired job is not moved), no
# job waits on it (its dependents would be stranded in RQ), and, from a sorted set, its score is above the minimum
# (see SCHEDULER_MARGIN). Returns one flat list, per job still there: id, tag, score, then its n fields; tag 'held'
# (claimed), 'waited_on' or 'due' (left). Flat, and the holding record built by concatenation: a nested reply and
# cjson per job cost Redis more than the claim itself.
CLAIM = """
local kind, min_score, state, nfields = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local fields, first = {}, 5 + nfields
for i = 1, nfields do fields[i] = ARGV[4 + i] end
local floor = nil
if min_score ~= '' then
  local t = redis.call('TIME')
  floor = tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(min_score)
end
local record = '{"key":' .. cjson.encode(KEYS[1]) .. ',"kind":' .. cjson.encode(kind) .. ',"state":' ..
  cjson.encode(state) .. ',"score":'
local out, n = {}, 0
for i = first, #ARGV do
  local id, job_key, dep_key = ARGV[i], KEYS[2 * (i - first) + 3], KEYS[2 * (i - first) + 4]
  if redis.call('EXISTS', job_key) == 1 then
    local tag, score = 'held', false
    if kind == 'zset' then score = redis.call('ZSCORE', KEYS[1], id) end
    if redis.call('SCARD', dep_key) > 0 then
      tag = 'waited_on'
    elseif kind == 'list' then
      if redis.call('LREM', KEYS[1], 1, id) == 0 then tag = nil end
    elseif not score then
      tag = nil
    elseif floor ~= nil and tonumber(score) <= floor then
      tag = 'due'
    else
      redis.call('ZREM', KEYS[1], id)
    end
    if tag == 'held' then
      redis.call('HSET', KEYS[2], id, record .. (score and cjson.encode(score) or 'false') .. '}')
    end
    if tag then
      out[n + 1], out[n + 2], out[n + 3] = id, tag, score
      local values = redis.call('HMGET', job_key, unpack(fields))
      for k = 1, nfields do out[n + 3 + k] = values[k] end
      n = n + 3 + nfields
    end
  end
end
return out
"""
CLAIM_STEP = 1000  # ids per script: Redis serves other clients between scripts (a few ms each)

# KEYS: holding, then per job: hash; ARGV: job ids. Puts held jobs back where they were claimed from (at the
# head of a list, last id first so their order is kept: they were ahead of anything enqueued since), unless
# their hash is gone.
RELEASE = """
for i = #ARGV, 1, -1 do
  local id = ARGV[i]
  local where = redis.call('HGET', KEYS[1], id)
  if where and redis.call('EXISTS', KEYS[i + 1]) == 1 then
    local w = cjson.decode(where)
    if w.kind == 'list' then redis.call('LPUSH', w.key, id) else redis.call('ZADD', w.key, w.score, id) end
  end
  redis.call('HDEL', KEYS[1], id)
end
return #ARGV
"""


@dataclass(frozen=True, slots=True)
class Source:
    """One place RQ keeps not-started jobs of a queue: its list, or its scheduled or deferred registry."""

    queue: str
    state: JobState
    key: str
    is_list: bool


def sources(backend: RQBackend, queue: str) -> list[Source]:
    """Deferred last: a dependent moves only once its parents are in Postgres."""
    q = backend.queue(queue)
    return [Source(queue, JobState.QUEUED, q.key, True),
            Source(queue, JobState.SCHEDULED, q.scheduled_job_registry.key, False),
            Source(queue, JobState.DEFERRED, q.deferred_job_registry.key, False)]


def snapshot(backend: RQBackend, source: Source) -> list[tuple[str, float | None]]:
    """Every id in the source right now, read in one atomic command (paging a list that workers pop from the
    head would skip ids)."""
    conn = backend.connection
    if source.is_list:
        return [(decode.text(i) or "", None) for i in conn.lrange(source.key, 0, -1)]
    return [(decode.text(m) or "", float(s)) for m, s in conn.zrange(source.key, 0, -1, withscores=True)]


def read(backend: RQBackend, source: Source, page: Sequence[tuple[str, float | None]]) -> list[tuple[PendingJob, bool]]:
    """Decode a page of jobs without claiming them: (job, whether other RQ jobs wait on it)."""
    job_class = backend.job_class
    with backend.connection.pipeline(transaction=False) as pipe:
        for job_id, _ in page:
            pipe.exists(job_class.key_for(job_id))
            pipe.hmget(job_class.key_for(job_id), decode.PENDING_FIELDS)
            pipe.scard(job_class.dependents_key_for(job_id))
        replies = pipe.execute()
    return [(_pending(backend, source, job_id, score, replies[3 * i + 1] if replies[3 * i] else None),
             bool(replies[3 * i + 2])) for i, (job_id, score) in enumerate(page)]


@dataclass(frozen=True, slots=True)
class Claimed:
    """The jobs we hold now (decoded from their hashes as they were at the claim), and those left in RQ."""

    held: list[PendingJob]
    waited_on: list[PendingJob]  # other RQ jobs depend on them
    due: int  # scheduled jobs too close to their time (see SCHEDULER_MARGIN)


def claim(backend: RQBackend, source: Source, ids: Sequence[str], steps: Executor | None = None) -> Claimed:
    """Atomically move these ids from the source into HOLDING; ids a worker took first are simply absent (see
    start_claim)."""
    return start_claim(backend, source, ids, steps)()


def start_claim(backend: RQBackend, source: Source, ids: Sequence[str], steps: Executor | None = None
                ) -> Callable[[], Claimed]:
    """claim in two halves: the scripts are sent now, and the function returned decodes their replies. One script
    per CLAIM_STEP ids (each atomic on its own), all sent in one round trip; or, given `steps` (an executor of one
    thread), queued there to run one after another while the caller decodes the replies already in, so that Redis
    and Python work at the same time. A claim is done once its scripts ran, decoded or not."""
    if not ids:
        return lambda: Claimed([], [], 0)
    margin = str(SCHEDULER_MARGIN) if source.state is JobState.SCHEDULED else ""
    kind = "list" if source.is_list else "zset"
    script, job_class, width = backend.connection.register_script(CLAIM), backend.job_class, len(decode.PENDING_FIELDS)
    options = [kind, margin, source.state.value, str(width), *decode.PENDING_FIELDS]

    def keys_and_args(step: Sequence[str]) -> tuple[list[str], list[str]]:
        keys = [source.key, HOLDING]
        for job_id in step:
            keys += [job_class.key_for(job_id), job_class.dependents_key_for(job_id)]
        return keys, [*options, *step]

    parts = [ids[start:start + CLAIM_STEP] for start in range(0, len(ids), CLAIM_STEP)]
    replies: Iterable[list[Any]]
    if steps is not None:
        futures = [steps.submit(lambda step: script(*keys_and_args(step)), part) for part in parts]
        replies = (future.result() for future in futures)
    else:
        with backend.connection.pipeline(transaction=False) as pipe:
            for step in parts:
                script(*keys_and_args(step), client=pipe)
            replies = pipe.execute()

    def decoded() -> Claimed:
        found: dict[bytes, list[PendingJob]] = {b"held": [], b"waited_on": [], b"due": []}
        for reply in replies:
            for i in range(0, len(reply), 3 + width):
                job_id, tag, score = reply[i:i + 3]
                found[tag].append(_pending(backend, source, job_id.decode(), float(score) if score else None,
                                           reply[i + 3:i + 3 + width]))
        return Claimed(found[b"held"], found[b"waited_on"], len(found[b"due"]))
    return decoded


def held(backend: RQBackend) -> list[PendingJob]:
    """Jobs an interrupted transfer claimed and did not finish, as they are now."""
    return held_jobs(backend.connection, backend.job_class, backend.serializer, backend.trusted_pickles)


def held_ids(backend: RQBackend) -> list[str]:
    return [decode.text(i) or "" for i in backend.connection.hkeys(HOLDING)]


def finish(backend: RQBackend, ids: Sequence[str]) -> None:
    """The jobs are in Postgres: delete them from RQ and from HOLDING in one transaction (one DEL, one HDEL)."""
    if not ids:
        return
    job_class, dependencies = backend.job_class, _dependencies_key_of(backend)
    keys = [key for job_id in ids for key in (job_class.key_for(job_id), job_class.dependents_key_for(job_id),
                                              dependencies(job_id))]
    with backend.connection.pipeline(transaction=True) as pipe:
        pipe.delete(*keys)
        pipe.hdel(HOLDING, *ids)
        pipe.execute()


def release(backend: RQBackend, ids: Sequence[str]) -> None:
    """Give held jobs back to RQ, where they were (Postgres would not take them)."""
    if ids:
        keys = [HOLDING, *(backend.job_class.key_for(i) for i in ids)]
        backend.connection.eval(RELEASE, len(keys), *keys, *ids)


# -- into RQ ---------------------------------------------------------------------------------------------------
def land(backend: RQBackend, specs: Sequence[JobSpec]) -> tuple[set[str], set[str]]:
    """Enqueue jobs taken from Postgres, each at most once: (done, conflicts). A job is enqueued, and its id
    added to LANDED, in one MULTI; an id already in LANDED was enqueued by an earlier run (it may have run and
    gone since); an id RQ already has for another job is a conflict and is not enqueued."""
    for _ in range(LAND_ATTEMPTS):
        try:
            return _land_once(backend, specs)
        except WatchError:  # one of these ids appeared in RQ meanwhile: look again
            continue
    raise BackendError("job ids kept changing in RQ while transferring; run transfer again")


def _land_once(backend: RQBackend, specs: Sequence[JobSpec]) -> tuple[set[str], set[str]]:
    ids = [s.job_id or "" for s in specs]
    with backend.connection.pipeline(transaction=True) as pipe:
        keys = [_job(backend, i).key for i in ids]
        pipe.watch(*keys)
        landed = {decode.text(i) for i in pipe.smembers(LANDED)} & set(ids) if ids else set()
        exists = [pipe.exists(k) for k in keys]
        conflicts = {i for i, e in zip(ids, exists) if e and i not in landed}
        fresh = [s for s in specs if s.job_id not in landed and s.job_id not in conflicts]
        pipe.multi()
        enqueued: dict[int, Any] = {}
        backend._enqueue_batch(fresh, pipe, enqueued)  # the adapter's own pipelined enqueue, inside our MULTI
        if fresh:
            pipe.sadd(LANDED, *(s.job_id for s in fresh))
        pipe.execute()
    return {i for i in ids if i not in conflicts}, conflicts


def forget_landed(backend: RQBackend, ids: Sequence[str]) -> None:
    if ids:
        backend.connection.srem(LANDED, *ids)


def sweep_landed(backend: RQBackend, held_ids: Sequence[str]) -> None:
    """Drop LANDED ids whose Postgres side is already clean (only while holding the transfer lock)."""
    stale = {decode.text(i) for i in backend.connection.smembers(LANDED)} - set(held_ids)
    if stale:
        backend.connection.srem(LANDED, *stale)


def _job(backend: RQBackend, job_id: str) -> rq.job.Job:
    return backend.job_class(job_id, connection=backend.connection)


def _dependencies_key_of(backend: RQBackend) -> Callable[[str], str]:
    """RQ names a job's dependencies set only on an instance: read the name once, from one Job, as a template."""
    probe = "MIGRATORPROBEID"
    template = _job(backend, probe).dependencies_key
    return lambda job_id: template.replace(probe, job_id)


def _pending(backend: RQBackend, source: Source, job_id: str, score: float | None,
             values: Sequence[bytes | None] | None) -> PendingJob:
    scheduled = source.state is JobState.SCHEDULED and score is not None
    run_at = datetime.fromtimestamp(score, timezone.utc) if scheduled else None  # type: ignore[arg-type]
    return decode.pending_job_of(job_id, source.queue, source.state, values, backend.serializer, run_at,
                                 backend.trusted_pickles)
