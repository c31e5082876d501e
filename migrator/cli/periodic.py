"""`migrator periodic list`: the new backend's periodic schedules (from migrator.toml, code or rq-scheduler), when
each runs next and last ran."""
from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from migrator import wiring
from migrator.cli.options import AppContext, console, emit_json, json_option, pass_app


@click.group("periodic")
def periodic() -> None:
    """Periodic jobs on the new backend (declare them in migrator.toml's [[periodic]])."""


@periodic.command("list")
@json_option
@pass_app
def list_cmd(app: AppContext, as_json: bool) -> None:
    """Every schedule: job, cron or interval, where it came from, next and last run (UTC)."""
    store = wiring.periodic_store(app.settings())
    try:
        entries = store.entries()
    finally:
        store.close()
    if as_json:
        emit_json([e.to_json() for e in entries])
        return
    table = Table(title=f"{len(entries)} periodic schedules", title_justify="left")
    for column in ("name", "job", "queue", "schedule", "source", "next run", "last run"):
        table.add_column(column)
    for e in entries:
        when = e.cron if e.cron is not None else f"every {e.every}s"
        table.add_row(Text(e.name), Text(e.job_name), Text(e.queue), Text(when), e.source,
                      f"{e.next_run_at:%Y-%m-%d %H:%M:%S}" if e.next_run_at else "",
                      f"{e.last_run_at:%Y-%m-%d %H:%M:%S}" if e.last_run_at else "")
    console.print(table)


def register(group: click.Group) -> None:
    group.add_command(periodic)
