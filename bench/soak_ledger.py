"""The soak's verdict from the ledger: lost jobs, duplicated runs (each with its cause: a SIGKILLed worker, or a
server outage that swallowed the outcome of a run), enqueue errors the app saw, and the timeline of faults."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
import redis
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from bench.soak_load import percentile
from migrator.routing import router as routing

if TYPE_CHECKING:
    from bench.soak_chaos import Chaos
    from bench.soak_load import Load

RUNS = "SELECT key, array_agg(pid ORDER BY at), array_agg(extract(epoch FROM at)::float8 ORDER BY at) FROM demo_ledger" \
       " GROUP BY key HAVING count(*) > 1 ORDER BY key"
LOST = "SELECT e.key FROM demo_enqueued e WHERE NOT EXISTS (SELECT 1 FROM demo_ledger l WHERE l.key = e.key) ORDER BY 1"
UNNOTED = "SELECT DISTINCT l.key FROM demo_ledger l WHERE NOT EXISTS (SELECT 1 FROM demo_enqueued e WHERE e.key = l.key)"
OUTAGE_MARGIN = 1.0  # seconds around an outage in which a run's outcome may have been lost with the server
# How soon a job whose outcome an outage swallowed runs again: on Postgres within the recovery grace and a reap or
# two; on RQ once its started-registry entry expires (60 s after the last heartbeat) and a worker's maintenance runs.
RERUN_WINDOW = {"postgres": 15.0, "redis": 180.0}
KILL_MARGIN = 5.0  # a run this long before its process was SIGKILLed was still running then (jobs take <= 3 s)


@dataclass(frozen=True, slots=True)
class Duplicate:
    key: str
    pids: list[int]
    at: list[float]  # seconds since the soak began, one per run
    cause: str  # "worker killed", "<server> outage", or "unexplained"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "pids": self.pids, "at": [round(t, 2) for t in self.at], "cause": self.cause}


@dataclass
class Verdict:
    enqueued: int
    ran: int
    ran_on: dict[str, int]
    lost: list[str]
    unnoted: list[str]  # ran, though the app saw its enqueue fail (or never noted it)
    duplicates: list[Duplicate]
    enqueue_errors: list[str]
    enqueue_p99_ms: float
    enqueue_max_ms: float
    fallbacks: dict[str, int]
    drained: bool
    timeline: list[tuple[float, str, str]]
    faults: dict[str, int] = field(default_factory=dict)
    stuck: list[str] = field(default_factory=list)  # Postgres jobs 'running' long after any fault
    orphans: list[str] = field(default_factory=list)  # lost jobs whose RQ hash is in no queue nor registry

    @property
    def unexplained(self) -> list[Duplicate]:
        return [d for d in self.duplicates if d.cause == "unexplained" or d.cause.startswith("STUCK")]

    @property
    def outage_reruns(self) -> list[Duplicate]:
        return [d for d in self.duplicates if "outage" in d.cause]

    def failures(self) -> list[str]:
        out = []
        if self.enqueued == 0:
            out.append("nothing was enqueued")
        if self.lost:
            out.append(f"{len(self.lost)} jobs lost: {', '.join(self.lost[:10])}"
                       + (f" ({len(self.orphans)} of them RQ job hashes with status 'scheduled' in no queue or "
                          f"registry, where drain-check cannot see them)" if self.orphans else ""))
        if self.unexplained:
            out.append(f"{len(self.unexplained)} duplicates that neither a killed worker nor the crash window explains: "
                       f"{', '.join(d.key for d in self.unexplained[:10])}")
        if self.stuck:
            out.append(f"{len(self.stuck)} jobs left running on Postgres by a live worker: {'; '.join(self.stuck[:5])}")
        if self.enqueue_errors:
            out.append(f"{len(self.enqueue_errors)} enqueue errors seen by the app: {self.enqueue_errors[0]}")
        if not self.drained:
            out.append("the backends did not drain")
        return out

    @property
    def ok(self) -> bool:
        return not self.failures()

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "failures": self.failures(), "enqueued": self.enqueued, "ran": self.ran,
                "ran_on": self.ran_on, "lost": len(self.lost), "lost_keys": self.lost[:50],
                "unnoted_runs": self.unnoted[:50], "duplicated": len(self.duplicates),
                "duplicates": [d.to_json() for d in self.duplicates],
                "duplicates_unexplained": len(self.unexplained), "enqueue_errors": len(self.enqueue_errors),
                "enqueue_error_samples": self.enqueue_errors[:10], "enqueue_p99_ms": round(self.enqueue_p99_ms, 2),
                "enqueue_max_ms": round(self.enqueue_max_ms, 2), "fallbacks": self.fallbacks,
                "drained": self.drained, "stuck": self.stuck, "orphaned_in_rq": self.orphans, "faults": self.faults,
                "timeline": [{"at": round(at, 1), "kind": kind, "what": what} for at, kind, what in self.timeline]}

    def render(self) -> str:
        causes = Counter(d.cause for d in self.duplicates)
        lines = ["", "ledger",
                 f"  enqueued        {self.enqueued}",
                 f"  ran             {self.ran}  ({', '.join(f'{k} {v}' for k, v in sorted(self.ran_on.items()))} runs)",
                 f"  lost            {len(self.lost)}",
                 f"  duplicated      {len(self.duplicates)}  ({', '.join(f'{k}: {v}' for k, v in causes.items()) or '-'})",
                 f"  enqueue errors  {len(self.enqueue_errors)}  (p99 {self.enqueue_p99_ms:.1f} ms, max "
                 f"{self.enqueue_max_ms:.0f} ms; fallbacks {self.fallbacks or 0})",
                 f"  drained         {'yes' if self.drained else 'NO'}",
                 f"  faults          {', '.join(f'{k} {v}' for k, v in sorted(self.faults.items()))}"]
        lines += [f"    {d.key}: runs by pids {d.pids} at t+{', '.join(f'{t:.1f}' for t in d.at)}s ({d.cause})"
                  for d in self.duplicates]
        if self.unnoted:
            lines.append(f"  ran without a successful enqueue: {', '.join(self.unnoted[:10])}")
        failures = self.failures()
        lines.append("PASSED: the aims hold" if not failures else "FAILED: " + "; ".join(failures))
        return "\n".join(lines)


def judge(ledger_url: str, chaos: "Chaos", loads: list["Load"], drained: bool, wall_start: float,
          stuck: list[str]) -> Verdict:
    """Read the ledger and explain every duplicated run by the faults of the timeline."""
    with psycopg.connect(ledger_url, autocommit=True) as conn:
        enqueued = _one(conn, "SELECT count(*) FROM demo_enqueued")
        ran = _one(conn, "SELECT count(DISTINCT key) FROM demo_ledger")
        ran_on = {str(k): int(v) for k, v in conn.execute("SELECT side, count(*) FROM demo_ledger GROUP BY side")}
        lost = [str(k) for (k,) in conn.execute(LOST)]
        unnoted = [str(k) for (k,) in conn.execute(UNNOTED)]
        runs = conn.execute(RUNS).fetchall()
    duplicates = []
    for key, pids, ats in runs:
        at = [t - wall_start for t in ats]
        duplicates.append(Duplicate(key, list(pids), at, _cause(list(pids), at, chaos)))
    latencies = [x for load in loads for x in load.latencies]
    errors = [e for load in loads for e in load.errors] + chaos.enqueue_errors
    faults = Counter(e.kind for e in chaos.timeline if e.kind not in ("start", "note", "load-stopped"))
    return Verdict(enqueued, ran, ran_on, lost, unnoted, duplicates, errors, percentile(latencies, 0.99) * 1000,
                   max(latencies, default=0.0) * 1000, {k.value: v for k, v in routing.FALLBACKS.items()}, drained,
                   [(e.at, e.kind, e.what) for e in chaos.timeline], dict(faults), stuck,
                   orphaned(chaos.cli_env["REDIS_URL"], lost))


def orphaned(redis_url: str, keys: list[str]) -> list[str]:
    """Lost jobs RQ still has a hash for, status 'scheduled', though its scheduled registry does not list them."""
    client = redis.Redis.from_url(redis_url)
    try:
        out = []
        for key in keys:
            job = Job(key, connection=client)
            status = client.hget(job.key, "status")
            if status == b"scheduled":
                origin = (client.hget(job.key, "origin") or b"default").decode()
                if client.zscore(ScheduledJobRegistry(origin, connection=client).key, key) is None:
                    out.append(key)
        return out
    finally:
        client.close()


def _cause(pids: list[int], ats: list[float], chaos: "Chaos") -> str:
    """Why a job ran more than once: a run whose process was SIGKILLed while it ran (its outcome never written),
    or a run just before a server crashed (its outcome lost with the server), else unexplained."""
    for pid, at in zip(pids[:-1], ats[:-1]):
        killed_at = chaos.killed.get(pid)
        if killed_at is not None and killed_at - KILL_MARGIN <= at <= killed_at:
            return "worker killed"
    for at in ats[:-1]:
        for server, began, ended in chaos.outages:
            if began - OUTAGE_MARGIN <= at <= ended + OUTAGE_MARGIN:
                if ats[-1] > ended + RERUN_WINDOW[server]:
                    return f"STUCK after the {server} outage: run again only at t+{ats[-1]:.1f}s"
                return f"{server} outage"
    return "unexplained"


def _one(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()  # type: ignore[arg-type]
    return int(row[0]) if row else 0
