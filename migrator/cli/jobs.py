"""`migrator jobs`: look at and operate the new backend's jobs and workers (show, counts, retry, delete-failed,
purge, workers), as `rq info` / GoodJob's dashboard / Sidekiq's retry set do for theirs."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

import click
from rich.table import Table
from rich.text import Text

from adapters.base import JobInfo, JobRefused, WorkerInfo
from adapters.spec import parse_timeout
from migrator import wiring
from migrator.cli import job_ops
from migrator.cli.options import AppContext, console, emit_json, json_option, pass_app
from migrator.errors import BadInput, CheckFailed

F = TypeVar("F", bound=Callable[..., Any])
MAX_RETENTION_SECONDS = 100 * 365 * 86400  # past any real retention; far past it, Postgres intervals overflow


Backend = Any  # the new backend as wiring builds it: the JobBackend protocol plus its failed-job operations


@contextlib.contextmanager
def _backend(app: AppContext) -> Iterator[Backend]:
    """The new backend, pinged first so that an unreachable Postgres is one line."""
    backend = wiring.postgres_backend(app.settings())
    backend.ping()
    try:
        yield backend
    finally:
        backend.close()


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _short(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def _age(value: datetime | None) -> str:
    """How long ago, for a heartbeat: what an operator reads to tell a stuck worker from a busy one."""
    if value is None:
        return "never"
    return f"{max(0, int((datetime.now(timezone.utc) - value).total_seconds()))}s ago"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@click.group()
def jobs() -> None:
    """Look at and operate the new backend's jobs and workers."""


# -- show ----------------------------------------------------------------------------------------------------
def _render_job(job: JobInfo) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows: list[tuple[str, Any]] = [
        ("id", job.job_id), ("status", str(job.state)), ("queue", job.queue), ("job", job.job_name),
        ("attempts", job.attempts), ("enqueued", _when(job.enqueued_at)), ("started", _when(job.started_at)),
        ("finished", _when(job.finished_at)), ("worker", job.worker), ("result", None if job.error_type else job.result),
        ("error", f"{job.error_type}: {job.error_message}" if job.error_type else None)]
    for label, value in rows:
        if value is not None:
            grid.add_row(label, Text(str(value)))  # Text: a value is never read as rich markup
    console.print(grid)
    if job.traceback:
        click.echo(job.traceback.rstrip())  # as written, never re-wrapped to the terminal's width


@jobs.command("show")
@click.argument("job_id")
@json_option
@pass_app
def show(app: AppContext, job_id: str, as_json: bool) -> None:
    """One job: status, queue, attempts, times, worker, result or error and traceback."""
    with _backend(app) as backend:
        job = backend.fetch_job(job_id)
    if job is None:
        raise CheckFailed(f"no job {job_id} on the new backend")
    if as_json:
        emit_json(job.to_json())
    else:
        _render_job(job)


# -- counts --------------------------------------------------------------------------------------------------
@jobs.command("counts")
@click.option("--queue", help="One queue only.")
@click.option("--job", "job_name", metavar="NAME", help="One job name only, e.g. app.jobs.send_email.")
@json_option
@pass_app
def counts(app: AppContext, queue: str | None, job_name: str | None, as_json: bool) -> None:
    """Jobs per queue, job name and state."""
    with _backend(app) as backend:
        rows = backend.counts(queue, job_name)
    if as_json:
        emit_json([r.to_json() for r in rows])
        return
    if not rows:
        console.print("no jobs on the new backend" + "".join(
            f" {label} {value}" for label, value in (("in queue", queue), ("named", job_name)) if value))
        return
    table = Table("queue", "job", "state", "count")
    table.columns[3].justify = "right"
    for r in rows:
        table.add_row(Text(r.queue), Text(r.job_name), str(r.state), str(r.count))
    console.print(table)


# -- retry and delete-failed ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Selection:
    """Which failed jobs a command acts on: given ids, one job name, or (both None) every failed job."""

    ids: list[str] | None
    job_name: str | None


def failed_selectors(f: F) -> F:
    f = click.option("--all-failed", is_flag=True, help="Every failed job.")(f)
    f = click.option("--job", "job_name", metavar="NAME", help="The failed jobs of one job name.")(f)
    return click.option("--id", "ids", multiple=True, metavar="JOB_ID", help="A failed job's id (repeatable).")(f)


def _selection(ids: tuple[str, ...], job_name: str | None, all_failed: bool) -> Selection:
    given = [name for name, on in (("--id", bool(ids)), ("--job", job_name is not None), ("--all-failed", all_failed))
             if on]
    if len(given) != 1:
        got = f" (got {' and '.join(given)})" if given else ""
        raise BadInput(f"choose exactly one of --id JOB_ID (repeatable), --job NAME or --all-failed{got}")
    if job_name is not None and not job_name.strip():
        raise BadInput("--job needs a job name, e.g. --job app.jobs.send_email")
    return Selection(list(ids) if ids else None, job_name)


def _report(verb: str, n: int, selection: Selection) -> str:
    line = f"{verb} {_plural(n, 'failed job')}"
    missed = len(selection.ids) - n if selection.ids is not None else 0
    if missed > 0:
        line += f" ({_plural(missed, 'given id')} {'is not a failed job' if missed == 1 else 'are not failed jobs'}" \
                " on the new backend)"
    return line


def _on_failed(app: AppContext, selection: Selection, as_json: bool, verb: str,
               act: Callable[[Backend, list[str] | None, str | None], int]) -> None:
    """One bulk action on the selected failed jobs, then its count: {"retried": n} or "retried n failed jobs"."""
    with _backend(app) as backend:
        n = act(backend, selection.ids, selection.job_name)
    if as_json:
        emit_json({verb: n})
    else:
        console.print(_report(verb, n, selection), soft_wrap=True)


@jobs.command("retry")
@failed_selectors
@json_option
@pass_app
def retry(app: AppContext, ids: tuple[str, ...], job_name: str | None, all_failed: bool, as_json: bool) -> None:
    """Put failed jobs back in their queues with a fresh attempt budget."""
    _on_failed(app, _selection(ids, job_name, all_failed), as_json, "retried", lambda b, ids, name: b.retry_failed(ids, name))


@jobs.command("delete-failed")
@failed_selectors
@json_option
@pass_app
def delete_failed(app: AppContext, ids: tuple[str, ...], job_name: str | None, all_failed: bool, as_json: bool) -> None:
    """Delete failed jobs, without asking (for scripts)."""
    _on_failed(app, _selection(ids, job_name, all_failed), as_json, "deleted", lambda b, ids, name: b.delete_failed(ids, name))


# -- purge ---------------------------------------------------------------------------------------------------
def parse_duration(value: str) -> int:
    """Seconds in '7d', '12h', '30m', '45s' or '3600', as job_timeout reads them."""
    problem = f"--older-than must be a duration such as 7d, 12h, 30m or 3600 (seconds), got {value!r}"
    try:
        seconds = parse_timeout(value, "--older-than")
    except (JobRefused, OverflowError):  # OverflowError: 'infd'
        raise BadInput(problem) from None
    if seconds is None or not 0 <= seconds <= MAX_RETENTION_SECONDS:
        raise BadInput(problem)
    return seconds


@jobs.command("purge")
@click.option("--older-than", "older_than", required=True, metavar="DURATION",
              help="Delete finished jobs that finished longer ago than this: 7d, 12h, 30m or seconds.")
@json_option
@pass_app
def purge(app: AppContext, older_than: str, as_json: bool) -> None:
    """Delete finished jobs older than a retention, whatever their result_ttl."""
    seconds = parse_duration(older_than)
    with _backend(app) as backend:
        n = backend.purge_finished(seconds)
    if as_json:
        emit_json({"purged": n, "older_than_seconds": seconds})
    else:
        console.print(f"purged {_plural(n, 'finished job')} older than {older_than.strip()}")


# -- workers -------------------------------------------------------------------------------------------------
@jobs.command("workers")
@json_option
@pass_app
def workers(app: AppContext, as_json: bool) -> None:
    """The new backend's workers: where they run, what they serve, whether they are alive."""
    with _backend(app) as backend:
        found: list[WorkerInfo] = backend.workers()
    if as_json:
        emit_json([w.to_json() for w in found])
        return
    if not found:
        console.print("no workers registered on the new backend")
        return
    table = Table("id", "host", "pid", "queues", "started", "heartbeat", "running", "alive")
    for w in found:
        table.add_row(str(w.worker_id), Text(w.hostname or ""), str(w.pid), Text(",".join(w.queues)),
                      _short(w.started_at), _age(w.last_heartbeat), str(w.running),
                      "[green]yes[/]" if w.alive else "[red]no[/]")
    table.columns[4].no_wrap = True
    console.print(table)


def register(group: click.Group) -> None:
    jobs.add_command(job_ops.cancel)
    jobs.add_command(job_ops.delete)
    group.add_command(jobs)
