"""`migrator transfer`: move not-started jobs between the backends exactly once; exit 1 when some must stay."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from adapters.base import BackendName
from migrator import wiring
from migrator.transfer import run as transfer, values as transfer_values
from migrator.cli.options import AppContext, console, emit_json, err_console, json_option, pass_app
from migrator.errors import BadInput, CheckFailed
from migrator.transfer.periodic import transfer_periodic
from migrator.transfer.values import Direction, TransferReport

SIDES = click.Choice([b.value for b in BackendName])
SHOWN_REFUSALS = 3  # example job ids shown per reason


def _direction(source: str, target: str | None) -> Direction:
    src = BackendName(source)
    dst = BackendName(target) if target else next(b for b in BackendName if b is not src)
    if src is dst:
        raise BadInput(f"--from and --to are both {src.value}; give two different backends")
    return Direction.between(src, dst)


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[transfer_values.Progress | None]:
    if not enabled:
        yield None
        return
    columns = (TextColumn("transferring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("transfer", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@click.command("transfer")
@click.option("--job", help="Move the jobs of this job name (dotted path) only.")
@click.option("--all", "everything", is_flag=True, help="Move the jobs of every job name.")
@click.option("--from", "source", type=SIDES, default="rq", show_default=True, help="Backend to move jobs out of.")
@click.option("--to", "target", type=SIDES, help="Backend to move jobs into [the other one].")
@click.option("--dry-run", is_flag=True, help="Show what would move, and what cannot; move nothing.")
@click.option("--chunk-size", type=click.IntRange(min=1), help="Jobs per step (one claim, one insert, one "
              "clean-up) [5000 into Postgres, 1000 into RQ]; smaller steps hold fewer jobs in transit at a time.")
@click.option("--periodic", is_flag=True, help="Move rq-scheduler's cron and interval entries into the new "
              "backend's schedule instead (stop rq-scheduler first).")
@json_option
@pass_app
def transfer_cmd(app: AppContext, job: str | None, everything: bool, source: str, target: str | None,
                 dry_run: bool, chunk_size: int | None, periodic: bool, as_json: bool) -> None:
    """Move jobs that have not started (queued, scheduled, deferred) to the other backend, exactly once.
    Safe to interrupt: running it again finishes what an interrupted run had begun."""
    if periodic:
        return _transfer_periodic(app, job or everything, _direction(source, target), dry_run, as_json)
    if bool(job) == everything:
        raise BadInput("give exactly one of --job JOB or --all")
    direction = _direction(source, target)
    settings = app.settings()
    legacy, new = wiring.rq_backend(settings), wiring.postgres_backend(settings)
    new.ping()  # fail fast, with one line, when a service is down
    legacy.ping()
    try:
        with _progress_bar(not as_json) as progress:
            report = transfer.transfer_pending(legacy, new, direction, job, dry_run, progress, chunk_size)
    finally:
        new.close()
        legacy.close()
    emit_json(report.to_json()) if as_json else _render(report)
    if report.refused:
        where = direction.value.split("->")[0]
        raise CheckFailed(f"{len(report.refused)} jobs cannot be moved and stay in {where} (reasons above)")


def _transfer_periodic(app: AppContext, job_given: object, direction: Direction, dry_run: bool,
                       as_json: bool) -> None:
    if job_given or direction is not Direction.TO_POSTGRES:
        raise BadInput("--periodic moves rq-scheduler's entries from rq to postgres; drop --job/--all/--from/--to")
    settings = app.settings()
    legacy, store = wiring.rq_backend(settings), wiring.periodic_store(settings)
    try:
        legacy.ping()
        report = transfer_periodic(legacy, store, dry_run)
    finally:
        store.close()
        legacy.close()
    if as_json:
        emit_json(report.to_json())
    else:
        verb = "would move" if dry_run else "moved"
        console.print(f"rq-scheduler -> postgres: {verb} {len(report.moved)} periodic entries")
        for job_id, job_name in report.moved.items():
            console.print(f"  {job_name} ({job_id})")
        for job_id, reason in report.refused.items():
            console.print(f"[yellow]stays[/]: {job_id}: {reason}")
    if report.refused:
        raise CheckFailed(f"{len(report.refused)} periodic entries cannot be moved and stay in rq-scheduler")


def _render(report: TransferReport) -> None:
    verb = "would move" if report.dry_run else "moved"
    table = Table(title=f"{report.direction.value}: {verb} {report.total_moved} jobs", title_justify="left")
    for column in ("job name", "state", "jobs"):
        table.add_column(column, justify="right" if column == "jobs" else "left")
    for m in report.moved:
        table.add_row(m.job_name, m.state.value, str(m.count))
    console.print(table)
    if report.recovered:
        done = "held by an interrupted run, would be finished" if report.dry_run else "finished for an interrupted run"
        console.print(f"{report.recovered} jobs {done}")
    if report.missed:
        console.print(f"{report.missed} jobs were taken by a worker before they could be moved (they ran there)")
    if report.waiting:
        console.print(f"{report.waiting} scheduled jobs are due now and left to RQ's scheduler; run transfer again")
    _render_refusals(report)


def _render_refusals(report: TransferReport) -> None:
    reasons = Counter((r.job_name, r.reason) for r in report.refused)
    for (job_name, reason), count in sorted(reasons.items()):
        ids = [r.job_id for r in report.refused if (r.job_name, r.reason) == (job_name, reason)][:SHOWN_REFUSALS]
        more = ", ..." if count > SHOWN_REFUSALS else ""
        console.print(f"[yellow]stays[/]: {count} {job_name} ({', '.join(ids)}{more}): {reason}")


def register(group: click.Group) -> None:
    group.add_command(transfer_cmd)
