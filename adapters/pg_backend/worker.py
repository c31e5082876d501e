"""The new backend's worker: claims jobs (as many as their run times allow, see claimer.py), runs them, writes
outcomes in batches, and recovers the jobs of dead workers. `--concurrency N` forks N such processes (supervisor.py).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import psycopg
from psycopg import sql

from adapters.base import BackendUnavailable
from adapters.pg_backend import claimer, current_job, db, executor, hooks, liveness, outcomes
from adapters.pg_backend.executor import Claimed, Outcome
from adapters.pg_backend.worker_options import WorkerOptions

log = logging.getLogger("migrator.worker")


class JobInterrupted(BaseException):
    """Raised in a running job when shutdown can wait no longer; the job is released, not failed."""


class Worker:
    def __init__(self, url: str, options: WorkerOptions, schema: str = "public") -> None:
        self.db = db.Database(url, schema, pool_size=1)
        self.options = options
        self.queues = list(options.queues)
        self.liveness = liveness.Liveness(self.db, self.queues, options.heartbeat_seconds)
        self.conn: psycopg.Connection[Any] | None = None
        self.stopping = False
        self.processed = 0
        self.outcomes = outcomes.Outcomes(self.db, self.liveness)
        self._had_conn = False
        self._reconnected = False
        self._last_commit = time.monotonic()  # of outcomes: see _commit
        self._next_housekeeping = 0.0
        self._woken = False
        self._in_job = False
        self._stop_timer: threading.Timer | None = None
        self.claim_size = claimer.ClaimSize(options.batch, options.claim_budget_seconds, options.slow_job_seconds)
        self.held = claimer.Held()
        self.releaser: claimer.Releaser | None = None
        self.handlers: list[hooks.Handler] = []  # loaded in run(), after the set-up function

    # -- lifecycle --------------------------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until stopped (or, with burst, until nothing is runnable); returns the jobs performed."""
        self._install_signals()
        worker_id = self.liveness.start()
        log.info("worker %s serving queues %s", worker_id, ",".join(self.queues))
        self.releaser = claimer.Releaser(self.db, self.held, worker_id, self.options.slow_job_seconds,
                                         self.queues, self.options.sync_commit).start()
        current_job.serve(self.db.url, self.db.schema)  # where get_current_job().save_meta() writes
        hooks.run_setup(self.options.setup)  # before any job, and before the handlers import the app's code
        self.handlers = hooks.load_handlers(self.options.exception_handlers)
        try:
            while not self.stopping:
                try:
                    if not self._step():
                        break
                except (psycopg.OperationalError, BackendUnavailable) as exc:
                    log.warning("lost postgres (%s); reconnecting", str(exc).splitlines()[0] if str(exc) else exc)
                    self._drop_conn()
                    time.sleep(0.5)
            self._retry_flush()
        finally:
            if self._stop_timer:
                self._stop_timer.cancel()
            if self.releaser:
                self.releaser.stop()
            self._drop_conn()
            self.liveness.stop()
            current_job.close()
            self.db.close()
        log.info("worker %s stopped after %s jobs", worker_id, self.processed)
        return self.processed

    def stop(self) -> None:
        self.stopping = True

    def _step(self) -> bool:
        """One turn of the loop; False when a burst worker is done."""
        conn = self._connection()
        self._flush()
        self._release(conn, self._take_held())  # left held by a connection lost mid-batch
        if self._reconnected or (self.releaser and self.releaser.claim_lost):
            self._requeue_own(conn)
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._housekeep(conn)
            self._next_housekeeping = now + self.options.reap_seconds
        jobs = self._claim(conn)
        if jobs:
            self._run_batch(conn, jobs)
            return True
        if self.options.burst:
            return False
        self._wait(conn)
        return True

    def _connection(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed:
            if self._had_conn:  # a lost connection (a restart?): what it may have forgotten is settled in _step
                self._reconnected = True
                self.outcomes.resend_recent()
            self.conn = db.connect(self.db.url, application_name=f"migrator-worker-{self.liveness.worker_id}")
            self._had_conn = True
            if not self.options.sync_commit:
                self.conn.execute("SET synchronous_commit = off")
            claimer.decode_quickly(self.conn)
            self.conn.add_notify_handler(self._on_notify)
            self.conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.db.channel)))
        return self.conn

    def _drop_conn(self) -> None:
        db.close_quietly(self.conn)
        self.conn = None

    # -- claiming and running ---------------------------------------------------------------------------------
    def _claim(self, conn: psycopg.Connection[Any]) -> list[Claimed]:
        jobs = claimer.claim(self.db, conn, self.queues, self.claim_size.size, self.liveness.worker_id)
        if not jobs:
            self.claim_size.reset()  # idle: whatever comes next may be slow
        return jobs

    def _run_batch(self, conn: psycopg.Connection[Any], jobs: list[Claimed]) -> None:
        # Pipeline mode sends outcomes without waiting for the reply, so the next job starts at once; sent
        # outcomes are kept until the pipeline syncs at the end of the batch, and re-sent if the connection broke.
        # The unstarted jobs wait in self.held, where the releaser thread can take them back while a slow job runs.
        # While jobs are fast, the next batch is claimed ahead by the releaser thread (_claim_ahead) and this loop
        # goes on into it: the outcomes so far commit first, as at the end of a batch.
        self.held.hold(jobs)
        started_any = False
        with conn.pipeline() as pipeline:
            while True:
                if self.stopping or (started_any and time.monotonic() - self.held.held_since > self.options.hold_seconds):
                    self._release(conn, self._take_held())
                    break
                if (job := self.held.start_next()) is None:
                    if self.releaser is None or self.releaser.claimed.is_set():
                        break
                    self.releaser.settle()  # a claim ahead in flight: its jobs (if any) continue this loop
                    continue
                started = time.monotonic()
                started_any = True
                self._in_job = True
                try:
                    outcome = executor.perform(job, self.options.missing_function_attempts, self.handlers,
                                               self.options.pickle_payloads)
                except JobInterrupted:
                    self._in_job = False  # before the release: a third signal must not interrupt it
                    self._release(conn, [job, *self._take_held()])
                    break
                finally:
                    self._in_job = False
                    self.held.job_done()
                self._record(outcome)
                now = time.monotonic()
                if self.claim_size.observe(now - started):
                    self._release(conn, self._take_held())
                if now - self._last_commit >= self.options.flush_every:
                    self._commit(conn, pipeline)
                elif now - started >= self.options.flush_after_job:
                    self.outcomes.send(conn)
                if self._may_claim_ahead():
                    self._claim_ahead(conn, pipeline)
            self.outcomes.send(conn)
        self.outcomes.committed()  # the pipeline synced: every outcome sent above is written
        self._last_commit = time.monotonic()
        self.claim_size.grow()

    def _may_claim_ahead(self) -> bool:
        """Fast jobs (a claim of more than one), less than a claim's worth held and none in flight, nothing due
        between batches: then at most two batches are held at a time."""
        # asked after every job: the test that is false for most of a batch (a claim ahead is held) comes first
        return (len(self.held) < self.claim_size.size and self.claim_size.size > 1 and self.releaser is not None
                and self.releaser.ready() and not self.stopping and not self._reconnected
                and time.monotonic() < self._next_housekeeping)

    def _claim_ahead(self, conn: psycopg.Connection[Any], pipeline: psycopg.Pipeline) -> None:
        """End the batch early: send its outcomes and commit them (one round trip, which the end of the batch would
        have cost), then have the releaser claim the next batch into `held` while the rest of this one runs."""
        assert self.releaser is not None
        self._commit(conn, pipeline)
        self.claim_size.grow()
        self.releaser.claim_ahead(self.claim_size.size)

    def _commit(self, conn: psycopg.Connection[Any], pipeline: psycopg.Pipeline) -> None:
        """Send the outcomes recorded so far and commit them: in pipeline mode the statements sent since the last sync
        are one transaction, so a worker killed before the sync would run them again."""
        self.outcomes.send(conn)
        pipeline.sync()
        self.outcomes.committed()
        self._last_commit = time.monotonic()

    def _take_held(self) -> list[Claimed]:
        """Every claimed job not started yet, a claim ahead in flight included."""
        if self.releaser is not None:
            self.releaser.settle()
        return self.held.take_all()

    def _record(self, outcome: Outcome) -> None:
        self.processed += 1
        self.outcomes.record(outcome)

    def _release(self, conn: psycopg.Connection[Any], jobs: list[Claimed]) -> None:
        claimer.release(self.db, conn, jobs, self.liveness.worker_id)
    # -- writing outcomes -------------------------------------------------------------------------------------
    def _flush(self) -> None:
        """Write outcomes left unwritten by a lost connection, on a new one (autocommit: written once sent)."""
        if not len(self.outcomes):
            return
        conn = self._connection()
        self.outcomes.resend_sent()
        self.outcomes.send(conn)
        self.outcomes.committed()

    def _requeue_own(self, conn: psycopg.Connection[Any]) -> None:
        """After a reconnect, between batches: rows still 'running' under this worker are ones it is not running
        (an outcome a crash forgot beyond the resend window, a claim whose reply was lost). The reaper never takes
        them (this worker is alive), so this worker gives them back; they run again (docs/backend.md)."""
        back = self.db.fetch_all("requeue_own_running", {"worker_id": self.liveness.worker_id}, conn=conn)
        if back:
            log.warning("worker %s requeued %d of its jobs left running across a reconnect", self.liveness.worker_id,
                        len(back))
        self._reconnected = False
        if self.releaser is not None:
            self.releaser.claim_lost = False

    def _retry_flush(self, attempts: int = 20) -> None:
        """At shutdown: keep trying to write outcomes for a while, so finished work is not run again."""
        for _ in range(attempts):
            try:
                self._flush()
                return
            except (psycopg.OperationalError, BackendUnavailable):
                self._drop_conn()
                time.sleep(0.5)
        log.error("could not record %s outcomes; those jobs will be requeued and may run again", len(self.outcomes))

    # -- housekeeping and waiting -----------------------------------------------------------------------------
    def _housekeep(self, conn: psycopg.Connection[Any]) -> None:
        reaped = liveness.reap_orphans(self.db, self.options.recovery_grace, self.options.max_interrupts, conn)
        for job_id, state in reaped:
            log.warning("job %s was running on a dead worker: %s", job_id,
                        "requeued" if state == "queued" else "failed after too many interruptions")
        self.db.execute("purge_expired", conn=conn)
        self.db.execute("release_dependents", {"ids": None}, conn=conn)

    def _on_notify(self, notify: psycopg.Notify) -> None:
        self._woken = True

    def _wait(self, conn: psycopg.Connection[Any]) -> None:
        """Sleep until a NOTIFY or the poll interval, which also bounds how late a scheduled job starts (RQ's
        scheduler polls once a second too)."""
        if self._woken:
            self._woken = False
            return
        for _ in conn.notifies(timeout=self.options.poll_seconds, stop_after=1):
            pass
        self._woken = False

    # -- signals ----------------------------------------------------------------------------------------------
    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGUSR1, self._on_interrupt_signal)
        executor.install_timeout_handler()

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        if self.stopping:  # second signal: stop now, give the running job back
            if self._in_job:
                raise JobInterrupted()
            return
        log.info("stopping: no new jobs; the running one has %.0fs to finish", self.options.shutdown_grace)
        self.stopping = True
        if self._in_job:
            self._stop_timer = threading.Timer(self.options.shutdown_grace, _interrupt_main)
            self._stop_timer.daemon = True
            self._stop_timer.start()

    def _on_interrupt_signal(self, signum: int, frame: Any) -> None:
        if self._in_job:
            raise JobInterrupted()


def _interrupt_main() -> None:
    os.kill(os.getpid(), signal.SIGUSR1)
