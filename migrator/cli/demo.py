"""`migrator demo`: a migration under live load on local servers, ending in a ledger."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.table import Table

from migrator.cli.options import console, emit_json, json_option
from migrator.demo.scenario import Demo, DemoOptions


@click.command()
@click.option("--seconds", default=16.0, show_default=True, type=click.FloatRange(2, 3600),
              help="How long the app's load runs.")
@click.option("--rate", default=120.0, show_default=True, type=click.FloatRange(1, 2000),
              help="Jobs the app enqueues per second.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the servers' files and worker logs here (default: a temporary folder).")
@json_option
def demo(seconds: float, rate: float, workdir: Path | None, as_json: bool) -> None:
    """A whole migration from RQ to Postgres under live load, on embedded local servers."""
    started = time.monotonic()
    say = (lambda text: None) if as_json else (lambda text: console.print(f"[dim]{time.monotonic() - started:6.1f}s[/] {text}"))
    tally = Demo(DemoOptions(seconds, rate, workdir), say).run()
    ok = tally.lost == 0 and tally.duplicated == 0 and tally.enqueued > 0
    if as_json:
        emit_json({"enqueued": tally.enqueued, "ran": tally.ran, "ran_on": tally.ran_on, "lost": tally.lost,
                   "duplicated": tally.duplicated, "lost_keys": tally.lost_keys,
                   "duplicated_keys": tally.duplicated_keys, "ok": ok})
        sys.exit(0 if ok else 1)
    table = Table(title="ledger", show_header=False)
    table.add_row("enqueued", str(tally.enqueued))
    table.add_row("run", f"{tally.ran}  ({', '.join(f'{n} on {side}' for side, n in sorted(tally.ran_on.items()))})")
    table.add_row("lost", str(tally.lost))
    table.add_row("duplicated", str(tally.duplicated))
    console.print(table)
    if not ok:
        console.print(f"[red]not clean[/]: lost {tally.lost_keys[:5]} duplicated {tally.duplicated_keys[:5]}")
    console.print(f"[bold]lost {tally.lost}, duplicated {tally.duplicated}[/]")
    sys.exit(0 if ok else 1)
