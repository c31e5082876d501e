"""What a worker writes back when its jobs end: each outcome is recorded as the job ends, sent in batches (the
successes in one statement per FINISH_CHUNK, failures one by one: they are rare), and kept until it is known written,
to be sent again after a lost connection. Writing an outcome twice is harmless: each write is conditional on the job
still being this worker's and running; losing one would leave its job 'running' until the worker goes."""
from __future__ import annotations

import collections
import logging
import time
from typing import Any

import psycopg

from adapters.base import DEFAULT_FAILURE_TTL, DEFAULT_RESULT_TTL
from adapters.pg_backend import db
from adapters.pg_backend.executor import Outcome
from adapters.pg_backend.liveness import Liveness

log = logging.getLogger("migrator.worker")
RESEND_SECONDS = 10.0  # outcomes sent again after a reconnect: well past what an asynchronous commit can lose
# Successes per finish_jobs statement: from about 200 ids on, the planner gives up the index of deferred jobs for
# a scan of the whole table when it looks for their dependents (about 100 ms at 20,000 rows instead of 0.3 ms).
FINISH_CHUNK = 100


class Outcomes:
    """One worker's outcomes on their way to Postgres: unwritten (recorded, not sent), sent (in the current pipeline
    transaction, not yet committed), recent (sent in the last RESEND_SECONDS: an asynchronous commit that a Postgres
    crash forgot is among them)."""

    def __init__(self, database: db.Database, liveness: Liveness) -> None:
        self.db = database
        self.liveness = liveness
        self.unwritten: list[Outcome] = []
        self.sent: list[Outcome] = []
        self.recent: collections.deque[tuple[float, Outcome]] = collections.deque()

    def record(self, outcome: Outcome) -> None:
        self.unwritten.append(outcome)
        if outcome.ok or outcome.expired:
            return
        if outcome.retry:
            log.warning("job %s failed (%s: %s); retry in %.1fs", outcome.job_id, outcome.error_type,
                        outcome.error_message, outcome.delay)
        else:  # ERROR with the exception attached: what Sentry's logging integration reports
            log.error("job %s failed (%s: %s)", outcome.job_id, outcome.error_type, outcome.error_message,
                      exc_info=outcome.exception)

    def __len__(self) -> int:
        """Outcomes not known to be written."""
        return len(self.unwritten) + len(self.sent)

    def committed(self) -> None:
        """The pipeline synced: every outcome sent is written."""
        self.sent.clear()

    def resend_sent(self) -> None:
        """The connection broke: what was sent in its open transaction is sent again."""
        self.unwritten[:0] = self.sent
        self.sent.clear()

    def resend_recent(self) -> None:
        """A new connection after a lost one (a restart?): what was committed asynchronously lately is sent again."""
        self.unwritten[:0] = [o for _, o in self.recent]
        self.recent.clear()

    def send(self, conn: psycopg.Connection[Any]) -> None:
        """Send the recorded outcomes: all successes in one statement per chunk, failures one by one."""
        outcomes, self.unwritten = self.unwritten, []
        # Kept as sent before anything is sent: if the connection breaks in the middle, they are sent again on the
        # next connection.
        self.sent.extend(outcomes)
        now = time.monotonic()
        self.recent.extend((now, o) for o in outcomes)
        while self.recent and self.recent[0][0] < now - RESEND_SECONDS:
            self.recent.popleft()
        ok = [o for o in outcomes if o.ok]
        for start in range(0, len(ok), FINISH_CHUNK):
            part = ok[start:start + FINISH_CHUNK]
            conn.execute(self.db.queries["finish_jobs"],
                         {"ids": [o.job_id for o in part], "results": [o.result for o in part],
                          "deleted": [o.job_id for o in part if o.deletes],
                          "worker_id": self.liveness.worker_id, "default_result_ttl": DEFAULT_RESULT_TTL},
                         prepare=True)
        for o in outcomes:
            if not o.ok:
                self._write_failure(conn, o)

    def _write_failure(self, conn: psycopg.Connection[Any], o: Outcome) -> None:
        if o.expired:
            self.db.execute("cancel_expired", {"id": o.job_id, "worker_id": self.liveness.worker_id}, conn=conn)
            return
        self.db.execute("fail_job", {"id": o.job_id, "worker_id": self.liveness.worker_id, "retry": o.retry,
                                     "delay": o.delay, "error_type": o.error_type, "error_message": o.error_message,
                                     "traceback": o.traceback, "default_failure_ttl": DEFAULT_FAILURE_TTL},
                        conn=conn)
