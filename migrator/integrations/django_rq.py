"""django-rq's queue class, routed: `RQ = {"QUEUE_CLASS": "migrator.integrations.django_rq.Queue"}` in a Django
project's settings makes `django_rq.enqueue`, `get_queue(...).enqueue` and `@django_rq.job` go through migrator's
router, with django-rq's commit modes kept (auto; on_db_commit: after the surrounding transaction commits;
request_finished: at the end of the request) and `ASYNC: False` still running jobs inline, as apps' tests expect."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django_rq import thread_queue
from django_rq.queues import get_commit_mode
from rq.job import Job as RQJob

from migrator import queue

COMMIT_MODES = ("auto", "on_db_commit", "request_finished")


class Queue(queue.Queue):
    """migrator.Queue taking django-rq's constructor arguments; a deferred enqueue returns None, as DjangoRQ's."""

    def __init__(self, name: str = "default", *, autocommit: bool | None = None, commit_mode: str | None = None,
                 **options: Any) -> None:
        if commit_mode is None:
            commit_mode = get_commit_mode() if autocommit is None else ("auto" if autocommit else "request_finished")
        if commit_mode not in COMMIT_MODES:
            raise ImproperlyConfigured(f"commit_mode must be one of {COMMIT_MODES}")
        self.commit_mode = commit_mode
        super().__init__(name, **options)

    def _enqueue(self, f: Callable[..., Any] | str, args: tuple[Any, ...], kwargs: dict[str, Any],  # type: ignore[override]
                 run_at: datetime | None, options: dict[str, Any]) -> RQJob | None:
        now = lambda: super(Queue, self)._enqueue(f, args, kwargs, run_at, dict(options))  # noqa: E731
        if self.commit_mode == "on_db_commit" and transaction.get_connection().in_atomic_block:
            transaction.on_commit(now)  # a rolled-back transaction enqueues nothing
            return None
        if self.commit_mode == "request_finished":
            thread_queue.add(self, (now,), {})  # type: ignore[arg-type]  # run when the request has finished
            return None
        return now()

    @staticmethod
    def original_enqueue_call(enqueue: Callable[[], Any]) -> Any:
        """What django-rq's thread queue calls for each deferred job at the end of a request."""
        return enqueue()
