"""`flip`, `unflip`, `rollout`, `rollback`, `status`, `history`: the routing commands over migrator.routing."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.markup import escape
from rich.table import Column, Table

from adapters.base import BackendName
from migrator import routing_edits, wiring
from migrator.compat import gate
from migrator.playbook import state as playbook_state
from migrator.routing import history, known_jobs, presence
from migrator.routing import status as routing_status
from migrator.cli.options import AppContext, console, emit_json, json_option, pass_app
from migrator.config import Settings
from migrator.errors import BadInput
from migrator.routing.flag_store import Change, validate_percent

T = TypeVar("T")

by_option = click.option("--by", help="Who makes the change, for the audit log [default: OS user@host].")


def _report(change: Change, job: str | None, settings: Settings) -> None:
    line, recorded = routing_edits.describe(change, job, settings)
    _say(f"{line}\n{recorded}" if recorded else line)


def _say(text: str) -> None:
    """One message, printed as is: no rich markup in job names, no wrapping inside a command to copy."""
    console.print(escape(text), soft_wrap=True)


@click.command()
@click.argument("job")
@click.option("--back", is_flag=True, help="Pin JOB to the legacy backend (RQ), even when a rollout includes it.")
@click.option("--force", is_flag=True, help="Accept a job name that is neither configured nor seen yet, and "
              "override the payload-compatibility gate (recorded in the audit log).")
@by_option
@pass_app
def flip(app: AppContext, job: str, back: bool, force: bool, by: str | None) -> None:
    """Route JOB to the new backend (Postgres), or with --back pin it to the legacy one."""
    settings = app.settings()
    store = wiring.flag_store(settings)
    if not force:
        routing_edits.require_known(settings, store, job, "use --force")
    if back:
        _report(store.pin(job, by), job, settings)
        return
    detail = routing_edits.compat_detail(settings, store, f"flip {job}", lambda before: gate.flipped(before, job), job, force)
    _report(store.flip(job, by, detail), job, settings)


@click.command()
@click.argument("job")
@by_option
@pass_app
def unflip(app: AppContext, job: str, by: str | None) -> None:
    """Remove JOB's flip or pin: it follows the rollout rule again."""
    settings = app.settings()
    change = wiring.flag_store(settings).unflip(job, by)
    flagged = change.before.flipped | change.before.pinned
    if change.entry is None and job not in flagged:
        guesses = known_jobs.closest(job, flagged)
        hint = f"; did you mean {', '.join(guesses)}?" if guesses else ""
        raise BadInput(f"{job!r} is neither flipped nor pinned, so there is nothing to unflip{hint}")
    _report(change, job, settings)


@click.command()
@click.option("--percent", type=float, help="Route this percentage of job names (0..100) to the new backend.")
@click.option("--all", "everything", is_flag=True, help="Route every job not pinned to the new backend.")
@click.option("--force", is_flag=True, help="Override the payload-compatibility gate (recorded in the audit log).")
@by_option
@pass_app
def rollout(app: AppContext, percent: float | None, everything: bool, force: bool, by: str | None) -> None:
    """Route a percentage of job names, or all of them, to the new backend (per-job flips and pins win)."""
    if (percent is None) == (not everything):
        raise BadInput("give exactly one of --percent P or --all")
    settings = app.settings()
    store = wiring.flag_store(settings)
    share = None if everything else validate_percent(percent or 0.0)
    action = "rollout --all" if everything else f"rollout --percent {share:g}"
    detail = routing_edits.compat_detail(settings, store, action, lambda before: gate.rolled_out(before, share), None, force)
    _report(store.rollout_all(by, detail) if share is None else store.rollout_percent(share, by, detail), None,
            settings)


@click.command()
@by_option
@pass_app
def rollback(app: AppContext, by: str | None) -> None:
    """Everything back to the legacy backend: clears flips, pins and rollout in one recorded step."""
    settings = app.settings()
    change = wiring.flag_store(settings).rollback(by)
    _report(change, None, settings)
    if change.entry is not None and change.entry.restore_commands:
        _say("to redo what was rolled back:\n  " + "\n  ".join(change.entry.restore_commands))


def _reading_postgres(settings: Settings, read: Callable[[Any], T]) -> Callable[[], T]:
    """One read of the new backend for status, on a backend of its own, closed after it."""
    def run() -> T:
        backend = wiring.postgres_backend(settings)
        try:
            return read(backend)
        finally:
            backend.close()
    return run


def _postgres_counter(settings: Settings) -> routing_status.Counter:
    return _reading_postgres(settings, lambda backend: backend.counts())


def _rq_counter(settings: Settings) -> routing_status.Counter:
    def count() -> list[Any]:
        backend = wiring.rq_backend(settings)
        try:
            # by_job: status lists pending jobs per job name, so RQ must read each job's name, not only sizes
            return list(backend.counts(by_job=True))
        finally:
            backend.close()
    return count


@click.command()
@json_option
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Every known job: where it routes and why; queue depths on both backends; the live routers."""
    settings = app.settings()
    store = wiring.flag_store(settings)
    snapshot = store.snapshot()
    counters = {BackendName.POSTGRES: _postgres_counter(settings), BackendName.RQ: _rq_counter(settings)}
    routers = presence.live_routers(store.tables, presence.drop_out_after(settings.flag_cache_seconds))
    pickles = routing_status.read_pickled(settings.pickle_payloads,
                                          _reading_postgres(settings, lambda backend: backend.pickled_counts()))
    report = routing_status.build(snapshot, routing_edits.known(settings, store), counters, routers=routers,
                                  pickles=pickles)
    playbooks = playbook_state.current_steps(wiring.playbook_state(settings))
    if as_json:
        emit_json({**report.to_json(), "playbooks": [p.to_json() for p in playbooks]})
        return
    _render_status(report)
    for p in playbooks:
        _say(p.line())


def _render_status(report: routing_status.StatusReport) -> None:
    s = report.snapshot
    _say(f"routing version {s.version}: rollout {history.rollout_rule(s)}, {len(s.flipped)} flipped, "
                  f"{len(s.pinned)} pinned")
    jobs = Table(Column("job", no_wrap=True), "backend", "why", "bucket", Column("pending rq", justify="right"),
                 Column("pending postgres", justify="right"))
    for j in report.jobs:
        jobs.add_row(escape(j.job_name), str(j.route.backend), j.route.reason, str(j.bucket),
                     str(j.pending.get("rq", "-")), str(j.pending.get("postgres", "-")))
    console.print(jobs)
    depths = Table("backend", "queue", "states")
    for d in report.depths:
        if d.error:
            depths.add_row(str(d.backend), "-", f"unavailable: {d.error}")
        for queue, states in sorted(d.by_queue().items()):
            depths.add_row(str(d.backend), queue, ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    console.print(depths)
    if report.pickles.shown():
        _say(report.pickles.line())
    _render_routers(report)


def _render_routers(report: routing_status.StatusReport) -> None:
    if not report.routers:
        _say("live routers: none (no process has routed jobs through migrator.Queue lately)")
        return
    behind = report.lagging
    _say(f"live routers: {len(report.routers)}, "
         + (f"{len(behind)} not yet on version {report.snapshot.version}" if behind else "all on the current version"))
    routers = Table("host", Column("pid", justify="right"), Column("version", justify="right"), "last seen")
    for r in report.routers:
        mark = " (lagging)" if r in behind else ""
        routers.add_row(escape(r.host), str(r.pid), f"{r.version}{mark}", r.last_seen.strftime("%H:%M:%S %Z"))
    console.print(routers)


@click.command("history")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000), help="Newest entries shown.")
@json_option
@pass_app
def history_cmd(app: AppContext, limit: int, as_json: bool) -> None:
    """The audit log of routing changes: who, when, what, before and after."""
    entries = wiring.flag_store(app.settings()).history(limit)
    if as_json:
        emit_json([e.to_json() for e in entries])
        return
    table = Table("#", "when", "who", Column("what", overflow="fold"), Column("change", overflow="fold"))
    for e in entries:
        table.add_row(str(e.id), e.at.strftime("%Y-%m-%d %H:%M:%S %Z"), escape(e.actor),
                      escape(f"{e.action} {e.job_name}" if e.job_name else e.action), escape(history.summarize(e.before, e.after)))
    console.print(table)
    for e in entries:
        if e.action == "rollback" and e.restore_commands:
            _say(f"to restore the routing before rollback #{e.id}:\n  " + "\n  ".join(e.restore_commands))


def register(group: click.Group) -> None:
    for command in (flip, unflip, rollout, rollback, status, history_cmd):
        group.add_command(command)
