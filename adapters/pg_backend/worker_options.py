"""What a `migrator worker` process is told: its queues, how much it claims at a time, when it writes outcomes,
how it judges dead workers and stops (the CLI's options and migrator.toml's keys, built by migrator.wiring)."""
from __future__ import annotations

from dataclasses import dataclass

from adapters.base import PickleOptIn


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    queues: tuple[str, ...] = ("default",)
    # Most jobs claimed per round trip. The claim budget below decides for any job slower than 40 us (see
    # claimer.ClaimSize); the cap matters for near-instant ones, whose claim of 500 costs Postgres about 4 ms.
    batch: int = 500
    claim_budget_seconds: float = 0.02  # claim about this much work at a time, by the average job run time
    # A job that has run this long is slow: the unstarted rest of its batch goes back to the queue at once (from
    # another thread, while it runs), so that the processes of --concurrency N run N slow jobs side by side.
    slow_job_seconds: float = 0.05
    burst: bool = False  # exit when nothing is runnable
    poll_seconds: float = 1.0  # fallback when a NOTIFY is missed
    hold_seconds: float = 1.0  # give back the unstarted rest of a batch once it has been held this long
    # When outcomes are written: sent right after any job that took flush_after_job or longer, and committed at
    # least every flush_every (a batch of 500 near-instant jobs is longer). A worker killed at the worst instant
    # re-runs at most the jobs since the last commit (see docs/backend.md): one job that did real work (I/O, a
    # partner call), or a few milliseconds of near-instant ones.
    flush_after_job: float = 0.001
    flush_every: float = 0.005
    # Outcome commits skip the WAL flush wait unless sync_commit is set: a *Postgres* crash may then forget the
    # last fraction of a second of outcomes, and those jobs run again (they are never lost).
    sync_commit: bool = False
    recovery_grace: float = 5.0  # seconds a dead worker's heartbeat must be stale before its jobs are requeued
    reap_seconds: float = 2.0  # how often this worker looks for dead workers' jobs
    heartbeat_seconds: float = 1.0
    shutdown_grace: float = 25.0  # after SIGTERM, how long a running job may go on before it is released
    missing_function_attempts: int = 10  # attempts for a job whose function does not import here
    max_interrupts: int = 5  # a job whose worker died this often is failed instead of requeued
    setup: str | None = None  # import path of a function run once per worker process before any job
    exception_handlers: tuple[str, ...] = ()  # import paths of RQ-style handlers run when a job fails
    pickle_payloads: PickleOptIn = PickleOptIn()  # jobs whose pickled arguments this worker loads (none by default)

