"""`migrator demo`: the default playbook run under live load on local servers, ending in a ledger."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from migrator.cli.options import console, emit_json, json_option
from migrator.demo.scenario import Demo, DemoOptions


@click.command()
@click.option("--seconds", default=20.0, show_default=True, type=click.FloatRange(2, 3600),
              help="The playbook's soaks in total (demo only: a real rollout soaks as the plan says).")
@click.option("--rate", default=120.0, show_default=True, type=click.FloatRange(1, 2000),
              help="Jobs the app enqueues per second.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the servers' files and worker logs here (default: a temporary folder).")
@json_option
def demo(seconds: float, rate: float, workdir: Path | None, as_json: bool) -> None:
    """A whole migration from RQ to Postgres under live load: playbooks/rq-to-postgres.toml on local servers."""
    started = time.monotonic()

    def say(text: str) -> None:
        if not as_json:
            console.print(f"[dim]{time.monotonic() - started:6.1f}s[/] {escape(text)}", soft_wrap=True)
    report = Demo(DemoOptions(seconds, rate, workdir), say).run()
    if as_json:
        emit_json(report.to_json())
        sys.exit(0 if report.ok else 1)
    t = report.tally
    table = Table(title="ledger", show_header=False)
    table.add_row("enqueued", str(t.enqueued))
    table.add_row("ran on RQ", str(t.ran_on.get("rq", 0)))
    table.add_row("ran on Postgres", str(t.ran_on.get("postgres", 0)))
    table.add_row("lost", str(t.lost))
    table.add_row("duplicated", str(t.duplicated))
    table.add_row("failed", str(report.failed))
    console.print(table)
    if t.lost or t.duplicated:
        console.print(f"[red]not clean[/]: lost {t.lost_keys[:5]} duplicated {t.duplicated_keys[:5]}")
    if report.playbook.status != "done":
        console.print(f"[red]the playbook did not finish[/]: {escape(report.playbook.message)}")
    console.print(f"[bold]lost {t.lost}, duplicated {t.duplicated}[/] in {time.monotonic() - started:.0f}s")
    sys.exit(0 if report.ok else 1)


def register(group: click.Group) -> None:
    group.add_command(demo)
