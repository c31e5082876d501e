"""JobSpec to RQ's own enqueue options, so RQ workers run the job exactly as if the app had called rq.Queue."""
from __future__ import annotations

from typing import Any

from rq import Callback, Retry
from rq.job import Dependency

from adapters.base import JobRefused, JobSpec


def refuse_unsupported(spec: JobSpec) -> None:
    """RQ has no job priority (apps use one queue per priority) and reads naive times as local: refuse both."""
    if spec.priority:
        raise JobRefused(f"RQ has no job priority (got priority={spec.priority} for {spec.job_name}); "
                         "enqueue on a higher-priority queue instead")
    if spec.run_at is not None and spec.run_at.tzinfo is None:
        raise JobRefused("run_at must be timezone-aware (use datetime.now(timezone.utc) or enqueue_in)")


def retry(spec: JobSpec) -> Retry | None:
    if spec.retry is None:
        return None
    return Retry(max=spec.retry.max, interval=list(spec.retry.intervals) if spec.retry.intervals else 0)


def depends_on(spec: JobSpec) -> Dependency | None:
    """RQ drops at_front for a deferred job unless the Dependency itself carries it."""
    if not spec.depends_on:
        return None
    return Dependency(jobs=list(spec.depends_on), allow_failure=spec.allow_failure, enqueue_at_front=spec.at_front)


def callback(spec: JobSpec, option: str) -> Callback | None:
    """RQ's Callback for one of the spec's callbacks, with the timeout rq.Callback(func, timeout=) gave."""
    name = getattr(spec, option)
    return Callback(name, timeout=spec.callback_timeouts.get(option)) if name else None


def options(spec: JobSpec) -> dict[str, Any]:
    """Keyword options shared by enqueue_call and Queue.prepare_data (both spell the timeout `timeout`)."""
    refuse_unsupported(spec)
    return {
        "args": tuple(spec.args), "kwargs": dict(spec.kwargs), "timeout": spec.timeout,
        "result_ttl": spec.result_ttl, "ttl": spec.ttl, "failure_ttl": spec.failure_ttl,
        "description": spec.description, "depends_on": depends_on(spec), "job_id": spec.job_id,
        "at_front": spec.at_front, "meta": dict(spec.meta) or None, "retry": retry(spec),
        "on_success": callback(spec, "on_success"), "on_failure": callback(spec, "on_failure"),
        "on_stopped": callback(spec, "on_stopped"),
    }


def call_options(spec: JobSpec) -> dict[str, Any]:
    """enqueue_call's and enqueue_at's keywords: options() and unique (Queue.prepare_data has no unique)."""
    return {**options(spec), "unique": spec.unique} if spec.unique else options(spec)


def scheduled_options(spec: JobSpec) -> dict[str, Any]:
    """enqueue_at's keywords: it names the timeout `job_timeout` and takes args/kwargs as explicit keywords,
    so a job argument called `description` or `ttl` can never be mistaken for an option."""
    opts = call_options(spec)
    opts["job_timeout"] = opts.pop("timeout")
    return opts
