"""`migrator playbook plan|run|status|abort FILE`: a rollout plan carried out step by step behind its gates."""
from __future__ import annotations

import sys
import time
from typing import Any

import click
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from migrator.cli.options import AppContext, console, emit_json, err_console, json_option, pass_app
from migrator.errors import BadInput
from migrator.playbook import plan as plans
from migrator.playbook import state as runs
from migrator.playbook.context import Context, open_context
from migrator.playbook.gates import GateResult
from migrator.playbook.perform import StepResult
from migrator.playbook.preview import preview
from migrator.playbook.runner import Observer, Runner
from migrator.playbook.values import Plan, Step

file_argument = click.argument("file", type=click.Path(dir_okay=False))
set_option = click.option("--set", "params", multiple=True, metavar="KEY=VALUE",
                          help="Give a value to one of the plan's [params] (repeatable).")


def _overrides(params: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--set takes KEY=VALUE, got {item!r}; e.g. --set first_job=app.jobs.send_email")
        out[key.strip()] = value
    return out


def _open(app: AppContext, file: str, params: tuple[str, ...], lenient: bool = False) -> tuple[Plan, Context]:
    plan = plans.load(file, _overrides(params), lenient)
    return plan, open_context(app.settings())


def _gate_line(gate: GateResult | None) -> str:
    if gate is None:
        return ""
    mark = "[green]ok[/]" if gate.ok else "[red]not ok[/]"
    return f"{mark} {escape(gate.message)}"


@click.group("playbook")
def playbook() -> None:
    """Run a rollout plan (playbooks/*.toml) step by step behind its gates, resumable."""


@playbook.command("plan")
@file_argument
@set_option
@json_option
@pass_app
def plan_cmd(app: AppContext, file: str, params: tuple[str, ...], as_json: bool) -> None:
    """Each step of FILE, what it would do now, and its gate's current value."""
    plan, ctx = _open(app, file, params)
    try:
        steps = preview(plan, ctx)
        state = runs.view(ctx.state, plan.name)
    finally:
        ctx.close()
    if as_json:
        emit_json({**plan.to_json(), "steps": [s.to_json() for s in steps], "state": state.to_json(plan)})
        return
    console.print(f"[bold]{escape(plan.name)}[/] ({escape(plan.path)}): {escape(plan.summary)}")
    table = Table("#", "step", "would", "gate now")
    for s in steps:
        table.add_row(str(s.step.index), escape(s.step.title), escape(s.would), _gate_line(s.gate))
    console.print(table)
    if state.run is not None and state.run.status in (runs.RUNNING, runs.STOPPED):
        console.print(f"run #{state.run.id} is {state.run.status} at step {state.run.step}: `run` resumes it")


class LiveView(Observer):
    """The current step, its gate values and its timer, redrawn in place; finished steps print above it."""

    def __init__(self, plan: Plan, live: Live | None) -> None:
        self.plan, self.live = plan, live
        self.started = time.monotonic()

    def _say(self, text: str) -> None:
        (self.live.console if self.live else err_console).print(text)

    def step_started(self, step: Step, resumed: bool) -> None:
        verb = "resuming" if resumed else "starting"
        self._say(f"[dim]{time.monotonic() - self.started:6.1f}s[/] {verb} step {step.index}/{len(self.plan.steps)}: "
                  f"[bold]{escape(step.title)}[/]")
        self._show(step, "running", 0.0, None, ())

    def progress(self, step: Step, text: str, elapsed: float, total: float | None,
                 gates: tuple[GateResult, ...] = ()) -> None:
        self._show(step, text, elapsed, total, gates)

    def step_finished(self, step: Step, result: StepResult) -> None:
        mark = "[green]passed[/]" if result.ok else "[red]failed[/]"
        self._say(f"[dim]{time.monotonic() - self.started:6.1f}s[/] step {step.index} {mark}: {escape(result.message)}")
        for gate in result.gates:
            self._say(f"         {gate.name}: {escape(_values(gate.values))}")

    def _show(self, step: Step, text: str, elapsed: float, total: float | None,
              gates: tuple[GateResult, ...]) -> None:
        if self.live is None:
            return
        timer = f"{elapsed:5.1f}s" + (f" / {total:g}s" if total else "")
        lines = [Text.from_markup(f"step {step.index}/{len(self.plan.steps)} [bold]{escape(step.title)}[/]: "
                                  f"{escape(text)}  {timer}")]
        lines += [Text.from_markup(f"  {g.name}: {_gate_line(g)}  {escape(_values(g.values))}") for g in gates]
        self.live.update(Group(*lines))


def _values(values: Any) -> str:
    return ", ".join(f"{k} {v}" for k, v in dict(values).items() if v not in (None, [], {}))


@playbook.command("run")
@file_argument
@set_option
@click.option("--yes", is_flag=True, help="Confirm every step (for pipelines).")
@json_option
@pass_app
def run_cmd(app: AppContext, file: str, params: tuple[str, ...], yes: bool, as_json: bool) -> None:
    """Carry out FILE step by step (resuming a stopped run); exit 0 done or paused, 1 stopped by a gate."""
    plan, ctx = _open(app, file, params)
    if not yes and not sys.stdin.isatty():
        ctx.close()
        raise BadInput("each step waits for a confirmation and stdin is not a terminal; pass --yes in a pipeline")
    try:
        with Live(console=err_console if as_json else console, transient=True, refresh_per_second=4) as live:
            view = LiveView(plan, None if as_json else live)

            def confirm(text: str) -> bool:
                live.stop()
                try:
                    return click.confirm(text, default=False, err=as_json)
                finally:
                    live.start()
            outcome = Runner(plan, ctx, confirm, view, yes).run()
    finally:
        ctx.close()
    if as_json:
        emit_json(outcome.to_json())
    else:
        color = {"done": "green", "paused": "yellow"}.get(outcome.status, "red")
        console.print(f"[{color}]{outcome.status}[/]: {escape(outcome.message)} (run #{outcome.run_id})")
    sys.exit(outcome.exit_code)


def _render_view(plan: Plan, state: runs.RunView) -> None:
    if state.run is None:
        console.print(f"{escape(plan.name)} has never run")
        return
    run = state.run
    console.print(f"{escape(plan.name)} run #{run.id}: [bold]{run.status}[/], step {run.step} of {len(plan.steps)}"
                  + (f": {escape(run.message)}" if run.message else ""))
    if state.holder:
        console.print(f"run by {escape(state.holder.host)} pid {state.holder.pid} since {state.holder.since:%H:%M:%S}")
    table = Table("#", "step", "status", "finished")
    for step in plan.steps:
        row = state.step(step.index)
        current = " <" if step.index == run.step and run.status in (runs.RUNNING, runs.STOPPED) else ""
        table.add_row(str(step.index), escape(step.title), (row.status if row else "-") + current,
                      row.finished_at.strftime("%H:%M:%S") if row and row.finished_at else "")
    console.print(table)


@playbook.command("status")
@file_argument
@set_option
@json_option
@pass_app
def status_cmd(app: AppContext, file: str, params: tuple[str, ...], as_json: bool) -> None:
    """The latest run of FILE: each step's status, and who runs it now."""
    plan, ctx = _open(app, file, params, lenient=True)
    try:
        state = runs.view(ctx.state, plan.name)
    finally:
        ctx.close()
    if as_json:
        emit_json(state.to_json(plan))
    else:
        _render_view(plan, state)


@playbook.command("abort")
@file_argument
@set_option
@json_option
@pass_app
def abort_cmd(app: AppContext, file: str, params: tuple[str, ...], as_json: bool) -> None:
    """Mark the latest run of FILE aborted (a live runner stops at its next check); routing is left as it is."""
    plan, ctx = _open(app, file, params, lenient=True)
    try:
        state = runs.abort(ctx.state, plan.name)
    finally:
        ctx.close()
    if as_json:
        emit_json(state.to_json(plan))
        return
    _render_view(plan, state)
    console.print("the next `run` starts over; routing is left as it is (`migrator rollback` sends all back to RQ)")


def register(group: click.Group) -> None:
    group.add_command(playbook)
