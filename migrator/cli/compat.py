"""`compat snapshot`, `compat check`, `compat scan`: lock job signatures, diff the code against the lock, test
live payloads against the code. Exit 1 when a check finds a payload or a change that would fail."""
from __future__ import annotations

import os
import sys

import click
from rich.markup import escape
from rich.table import Column, Table

from adapters.base import BackendError, BackendName, JobBackend
from migrator import wiring
from migrator.cli.options import AppContext, console, emit_json, json_option, pass_app
from migrator.compat import check as compat_check
from migrator.compat import lockfile, scan as compat_scan
from migrator.config import Settings
from migrator.errors import BadInput, MigratorError

BACKENDS = {"rq": (BackendName.RQ,), "postgres": (BackendName.POSTGRES,), "all": (BackendName.RQ, BackendName.POSTGRES)}


def app_on_path() -> None:
    """Like `rq worker`, the app's job modules import from the working directory."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _say(text: str) -> None:
    console.print(escape(text), soft_wrap=True)


@click.group()
def compat() -> None:
    """Payload compatibility: lock job signatures, check code against the lock, scan live payloads."""


@compat.command()
@json_option
@pass_app
def snapshot(app: AppContext, as_json: bool) -> None:
    """Write the lock file: every known job's signature (job_modules, plus job names the router has seen)."""
    settings = app.settings()
    app_on_path()
    try:
        seen, note = wiring.routing_tables(settings).seen_jobs(), None
    except (BackendError, MigratorError) as exc:  # the lock of job_modules alone is still worth writing
        seen, note = [], f"job names seen by the router not read ({exc})"
    done = lockfile.snapshot(settings, seen, note)
    if as_json:
        emit_json(done.to_json())
        return
    _say(done.summary())
    if done.unresolved:
        _say(f"seen by the router but not in this code, left out: {', '.join(done.unresolved)}")
    if done.seen_note:
        _say(f"note: {done.seen_note}")


@compat.command("check")
@json_option
@pass_app
def check_cmd(app: AppContext, as_json: bool) -> None:
    """Compare the code's job signatures with the lock file; exit 1 on a change that breaks a rolling deploy."""
    settings = app.settings()
    app_on_path()
    report = compat_check.check_code(settings)
    if as_json:
        emit_json(report.to_json())
    else:
        _render_check(report)
    if not report.ok:
        sys.exit(1)


def _render_check(report: compat_check.CheckReport) -> None:
    if report.changes:
        table = Table(Column("job", no_wrap=True), "change", Column("what", overflow="fold"), "breaks")
        for c in report.changes:
            breaks = "\n".join(d.value for d in c.breaks) or "safe"
            table.add_row(escape(c.job_name), c.kind.value, escape(c.detail), breaks)
        console.print(table)
    for c in report.breaking:
        _say(f"{c.job_name} ({c.kind.value}): {c.recipe}")
    _say(report.summary())
    if report.ok and report.changes:
        _say("run `migrator compat snapshot` and commit the lock file with this change")


@compat.command("scan")
@click.option("--backend", "which", default="all", show_default=True,
              help="Whose pending payloads to test: rq, postgres or all.")
@click.option("--job", help="Only this job name.")
@json_option
@pass_app
def scan_cmd(app: AppContext, which: str, job: str | None, as_json: bool) -> None:
    """Test every pending payload against the code now: function imports, arguments bind, new backend carries it."""
    sides = BACKENDS.get(which.lower())
    if sides is None:
        raise BadInput(f"--backend must be rq, postgres or all, got {which!r}")
    settings = app.settings()
    app_on_path()
    backends = _backends(settings, sides)
    try:
        report = compat_scan.scan_payloads(backends, job, carrier=wiring.postgres_backend(settings),
                                           pickles=settings.pickle_payloads)
    finally:
        for b in backends:
            b.close()
    if as_json:
        emit_json(report.to_json())
    else:
        render_scan(report)
    if not report.ok:
        sys.exit(1)


def _backends(settings: Settings, sides: tuple[BackendName, ...]) -> list[JobBackend]:
    made: list[JobBackend] = []
    for side in sides:
        backend: JobBackend = wiring.rq_backend(settings) if side is BackendName.RQ else wiring.postgres_backend(settings)
        made.append(backend)
        backend.ping()  # one line and exit 2 when a service is down, before any work
    return made


def render_scan(report: compat_scan.ScanReport) -> None:
    if report.jobs:
        table = Table(Column("job", no_wrap=True), Column("payloads", justify="right"),
                      Column("failing", justify="right"), Column("why", overflow="fold"))
        for j in report.jobs:
            why = "\n".join(f"{n}× {r}" for r, n in j.reasons) or "ok"
            table.add_row(escape(j.job_name), str(j.seen), str(j.failing), escape(why))
        console.print(table)
    for j in report.failing_jobs():
        for e in j.examples:
            _say(f"  {e.backend.value} {e.state.value} {e.job_id}: {e.call}")
    _say(report.summary())


def register(group: click.Group) -> None:
    group.add_command(compat)
