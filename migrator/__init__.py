"""migrator: move background jobs from RQ to a Postgres job queue one job at a time."""
from migrator.queue import Queue, job
from migrator.router import Router

__all__ = ["Queue", "Router", "job"]
