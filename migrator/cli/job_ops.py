"""`migrator jobs cancel|delete --id ...`: RQ's job.cancel() and job.delete() from the command line, on whichever
backend holds each job (the new backend first, then RQ), so an operator need not know where the flags sent it."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import click

from adapters.base import InvalidJobOperation, JobBackend
from migrator import wiring
from migrator.cli.options import AppContext, emit_json, json_option, pass_app
from migrator.errors import CheckFailed


@contextlib.contextmanager
def _backends(app: AppContext) -> Iterator[list[JobBackend]]:
    settings = app.settings()
    found: list[JobBackend] = [wiring.postgres_backend(settings), wiring.rq_backend(settings)]
    try:
        for backend in found:
            backend.ping()  # an unreachable one is one line, exit 2, before anything changes
        yield found
    finally:
        for backend in found:
            backend.close()


def _on_each(app: AppContext, ids: tuple[str, ...], act: Callable[[JobBackend, str], bool], verb: str,
             as_json: bool) -> None:
    """Apply `act` to each id on the first backend that holds it; exit 1 if any id was refused or not found."""
    done: dict[str, str] = {}
    problems: dict[str, str] = {}
    with _backends(app) as backends:
        for job_id in ids:
            try:
                where = next((b.name.value for b in backends if act(b, job_id)), None)
            except InvalidJobOperation as exc:
                problems[job_id] = str(exc)
                continue
            if where is None:
                problems[job_id] = f"no job {job_id} on either backend"
            else:
                done[job_id] = where
    if as_json:
        emit_json({verb: done, "problems": problems})
    else:
        for job_id, where in done.items():
            click.echo(f"{verb} {job_id} on {where}")
    if problems:
        raise CheckFailed("; ".join(problems.values()))


ids_option = click.option("--id", "ids", multiple=True, required=True, metavar="JOB_ID", help="A job id (repeatable).")


@click.command("cancel")
@ids_option
@json_option
@pass_app
def cancel(app: AppContext, ids: tuple[str, ...], as_json: bool) -> None:
    """Cancel jobs that have not started (RQ's job.cancel()): they will not run. Exit 1 if one was not found,
    was canceled already or has started (on the new backend a started job is deleted, not canceled)."""
    _on_each(app, ids, lambda backend, job_id: backend.cancel_job(job_id), "canceled", as_json)


@click.command("delete")
@ids_option
@json_option
@pass_app
def delete(app: AppContext, ids: tuple[str, ...], as_json: bool) -> None:
    """Delete jobs in any state (RQ's job.delete()); a running job goes on but its outcome is not kept."""
    _on_each(app, ids, lambda backend, job_id: backend.delete_job(job_id), "deleted", as_json)
