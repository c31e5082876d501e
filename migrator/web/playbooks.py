"""Playbook runs started from the panel: the runner of `migrator playbook run` in a thread of the server. The page's
confirmation confirms the run and the step it resumes at; a later confirm or checklist step pauses the run for the
operator's word (run it again from the page), as the CLI would ask at the terminal."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from migrator.config import Settings
from migrator.errors import BadInput, MigratorError
from migrator.playbook import plan as plans
from migrator.playbook import state as runs
from migrator.playbook.context import Context, open_context
from migrator.playbook.perform import StepResult
from migrator.playbook.runner import Observer, Runner, RunOutcome, prompt
from migrator.playbook.values import Plan, Step
from adapters.base import BackendError

STARTED_WITHIN = 10.0  # seconds to wait for a run to take its lock and start (or be refused) before answering


def parse_params(text: str) -> dict[str, str]:
    """`key=value` lines (or space-separated pairs), as `--set` takes them."""
    out = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"parameters are KEY=VALUE, got {item!r}; e.g. first_job=app.jobs.send_email")
        out[key.strip()] = value
    return out


def available(directory: Path) -> list[str]:
    """The plans an operator can pick: *.toml under the playbooks directory."""
    return sorted(str(p) for p in directory.glob("*.toml")) if directory.is_dir() else []


def load(directory: Path, file: str, params: str, lenient: bool = False) -> Plan:
    if file not in available(directory):
        raise BadInput(f"no playbook {file!r} under {directory}; pick one of {', '.join(available(directory)) or '-'}")
    return plans.load(file, parse_params(params), lenient)


class _Started(Observer):
    def __init__(self) -> None:
        self.event = threading.Event()

    def step_started(self, step: Step, resumed: bool) -> None:
        self.event.set()

    def step_finished(self, step: Step, result: StepResult) -> None:
        self.event.set()


@dataclass
class Run:
    """One run in the background: its outcome or the error that refused it, once known."""

    plan: Plan
    started: _Started = field(default_factory=_Started)
    outcome: RunOutcome | None = None
    error: Exception | None = None
    thread: threading.Thread | None = None


class Runs:
    """The panel's runs in flight; stop() aborts each (as `playbook abort` does) and joins its thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.live: list[Run] = []

    def start(self, plan: Plan) -> str:
        ctx = open_context(self.settings)
        view = runs.view(ctx.state, plan.name)
        resume_at = view.run.step if view.run and view.run.status in (runs.RUNNING, runs.STOPPED) else 1
        allowed = prompt(plan.steps[resume_at - 1]) if 0 < resume_at <= len(plan.steps) else ""

        def confirm(text: str) -> bool:
            return text == allowed or text.startswith("run step ")

        run = Run(plan)
        run.thread = threading.Thread(target=self._run, args=(run, ctx, confirm), name=f"playbook {plan.name}",
                                      daemon=True)
        self.live = [r for r in self.live if r.thread is not None and r.thread.is_alive()] + [run]
        run.thread.start()
        run.started.event.wait(STARTED_WITHIN)
        if run.error is not None:
            raise run.error
        if run.outcome is not None:
            return f"run #{run.outcome.run_id} {run.outcome.status}: {run.outcome.message}"
        return f"{plan.name} is running; the overview shows its current step and gates"

    def _run(self, run: Run, ctx: Context, confirm: object) -> None:
        try:
            run.outcome = Runner(run.plan, ctx, confirm, run.started).run()  # type: ignore[arg-type]
        except (MigratorError, BackendError) as exc:
            run.error = exc
        finally:
            ctx.close()
            run.started.event.set()

    def stop(self) -> None:
        for run in self.live:
            if run.thread is not None and run.thread.is_alive():
                ctx = open_context(self.settings)
                try:
                    runs.abort(ctx.state, run.plan.name)
                except (MigratorError, BackendError):
                    pass  # finished meanwhile: nothing to abort
                finally:
                    ctx.close()
                run.thread.join(30)


def abort(settings: Settings, plan: Plan) -> str:
    ctx = open_context(settings)
    try:
        view = runs.abort(ctx.state, plan.name)
    finally:
        ctx.close()
    run_id = view.run.id if view.run else "?"
    return (f"run #{run_id} of {plan.name} aborted (a live runner stops at its next check); routing is left as it "
            "is (roll back to send everything to RQ)")
