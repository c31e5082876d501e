"""RQ's maintenance lock, when a dead worker left it behind.

An RQ worker cleans a queue's registries (it fails or retries the jobs abandoned by dead workers, takes jobs out
of the intermediate list) only after `SET rq:clean_registries:<queue> 1 NX EX 899`, and deletes the key when done.
A worker that dies in between (SIGKILL, or Redis crashing under it: the SET is in the append-only file, the DEL
never comes) leaves the lock for 15 minutes, and until it expires no RQ worker cleans that queue: its abandoned
jobs stay "started" by a dead worker and nothing runs them. A cleaning takes well under a second, so a lock held
for minutes was left behind: the drain check says so, and a transfer releases it for RQ's workers to clean by
RQ's own rules (retry or fail, failure callbacks) at their next maintenance.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

LOCK_SECONDS = 899  # rq.Queue.acquire_maintenance_lock: SET NX EX 899 (RQ 2 and 3)
LEFT_AFTER = 60  # seconds a maintenance lock must have been held to be called left behind (a cleaning takes < 1 s)

# Delete the lock only if it is (still) older than LEFT_AFTER: a worker that took it afresh since keeps it.
_RELEASE = """
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 and ttl <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return ttl
end
return -1
"""


@dataclass(frozen=True, slots=True)
class LeftLock:
    """A queue's maintenance lock held for `held` seconds by no worker that will release it; expires in `expires_in`."""

    queue: str
    held: int
    expires_in: int


def lock_key(queue: str) -> str:
    return f"rq:clean_registries:{queue}"  # rq.Queue.registry_cleaning_key


def left_locks(connection: Redis, queues: Sequence[str]) -> list[LeftLock]:
    """The queues whose maintenance lock has been held longer than any cleaning takes."""
    names = sorted(set(queues))
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.ttl(lock_key(name))
        ttls = pipe.execute()
    return [LeftLock(name, LOCK_SECONDS - int(ttl), int(ttl)) for name, ttl in zip(names, ttls)
            if 0 < int(ttl) <= LOCK_SECONDS - LEFT_AFTER]


def release_left_locks(connection: Redis, queues: Sequence[str]) -> list[LeftLock]:
    """Delete the maintenance locks left behind (atomically re-checked, so a fresh one is never deleted)."""
    release = connection.register_script(_RELEASE)
    released = []
    for lock in left_locks(connection, queues):
        ttl = int(release(keys=[lock_key(lock.queue)], args=[LOCK_SECONDS - LEFT_AFTER]))
        if ttl > 0:
            released.append(LeftLock(lock.queue, LOCK_SECONDS - ttl, ttl))
    return released
