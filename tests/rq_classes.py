"""An app's own RQ classes, named once in migrator.toml (rq_job_class, rq_queue_class): a Job subclass, and a Queue
subclass that stamps each job it creates, so a test can tell which classes wrote and read a job."""
from __future__ import annotations

from typing import Any

import rq
from rq.job import Job


class AppJob(Job):
    """The app's Job class (apps add properties or override how results are read)."""


class AppQueue(rq.Queue):
    """The app's Queue class: every job it creates carries its name in meta."""

    def create_job(self, *args: Any, **kwargs: Any) -> Job:
        job = super().create_job(*args, **kwargs)
        job.meta["queue_class"] = type(self).__name__
        return job
