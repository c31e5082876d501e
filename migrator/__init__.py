"""migrator: move background jobs from RQ to a Postgres job queue one job at a time."""
from migrator.job import Job, get_current_job
from migrator.queue import Queue, Router, job

__all__ = ["Queue", "Router", "job", "Job", "get_current_job"]
