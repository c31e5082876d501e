"""`migrator drain-check`: exit 0 drained, 1 not drained (with what remains and where), 2 could not check."""
from __future__ import annotations

from collections.abc import Callable

import click
from rich.live import Live

from adapters.base import BackendName, JobBackend, SchemaMissing
from migrator import wiring
from migrator.drain import check as drain, strays, wait as drain_wait
from migrator.cli import drain_render
from migrator.cli.options import AppContext, console, emit_json, err_console, json_option, pass_app
from migrator.config import Settings
from migrator.drain.values import DrainReport
from migrator.errors import BackendUnavailable, BadInput, CheckFailed, MigratorError

# The default is the question asked before removing RQ: is the legacy backend drained?
BACKENDS = {"rq": (BackendName.RQ,), "postgres": (BackendName.POSTGRES,), "all": tuple(BackendName)}


def _backends(value: str) -> tuple[BackendName, ...]:
    try:
        return BACKENDS[value.lower()]
    except KeyError:
        raise BadInput(f"--backend must be rq, postgres or all (default rq, the legacy backend), got {value!r}") \
            from None


def _non_negative(name: str, value: float) -> float:
    if value < 0:
        raise BadInput(f"{name} must be >= 0 seconds, got {value:g}")
    return value


def _timeline(settings: Settings, sides: tuple[BackendName, ...]) -> tuple[strays.RoutingTimeline | None, str]:
    """The routing history that dates flips; without Postgres (checking RQ alone) strays go unchecked."""
    try:
        return strays.load_timeline(wiring.flag_store(settings)), ""
    except BackendUnavailable as exc:
        if BackendName.POSTGRES in sides:
            raise  # Postgres is checked anyway: an unreachable one is exit 2, not a silent gap
        return None, f"stray enqueues not checked: {exc}"
    except (MigratorError, SchemaMissing) as exc:  # flipper not installed, routing tables not migrated
        return None, f"stray enqueues not checked: {exc}"


def _checker(settings: Settings, sides: tuple[BackendName, ...], job: str | None) -> tuple[Callable[[], DrainReport], str]:
    legacy: JobBackend | None = wiring.rq_backend(settings) if BackendName.RQ in sides else None
    new: JobBackend | None = wiring.postgres_backend(settings) if BackendName.POSTGRES in sides else None
    for backend in (new, legacy):
        if backend is not None:
            backend.ping()  # fail fast with one line when a service is down
    timeline, note = _timeline(settings, sides) if legacy is not None else (None, "")
    since = timeline.since if timeline is not None else None
    bound = strays.propagation_bound(settings)

    def check() -> DrainReport:
        return drain.check_drain(legacy, new, job, queues=settings.queues, routed_since=since, bound=bound)
    return check, note


@click.command("drain-check")
@click.option("--backend", "backend_opt", default="rq", show_default=True, metavar="rq|postgres|all",
              help="The backend to prove drained: rq (legacy, the question before removing RQ), postgres, or all.")
@click.option("--job", help="Check one job name only, e.g. app.jobs.send_email.")
@click.option("--wait", is_flag=True, help="Wait until drained and quiet for --quiet-period.")
@click.option("--timeout", default=600.0, show_default=True, type=float, help="With --wait: give up after S seconds.")
@click.option("--quiet-period", default=10.0, show_default=True, type=float,
              help="With --wait: stay drained this long before passing.")
@json_option
@pass_app
def drain_check(app: AppContext, backend_opt: str, job: str | None, wait: bool, timeout: float,
                quiet_period: float, as_json: bool) -> None:
    """Prove a backend (or one job) drained: nothing queued, scheduled, deferred, started or awaiting retry."""
    sides = _backends(backend_opt)
    timeout, quiet_period = _non_negative("--timeout", timeout), _non_negative("--quiet-period", quiet_period)
    check, note = _checker(app.settings(), sides, job)
    if wait:
        outcome = _wait(check, timeout, quiet_period, as_json)
        report, ok = outcome.report, outcome.ok
    else:
        report = check()
        ok = report.ok
    if as_json:
        emit_json({**report.to_json(), "ok": ok, "note": note or None})
    else:
        drain_render.render(console, report, note)
        if wait and not ok:
            console.print(f"[bold red]timed out[/] after {timeout:g}s: not drained and quiet for {quiet_period:g}s")
    if not ok:
        raise CheckFailed(drain_render.verdict(report).plain if not wait else
                          f"not drained and quiet for {quiet_period:g}s after {timeout:g}s")


def _wait(check: Callable[[], DrainReport], timeout: float, quiet: float, as_json: bool) -> drain_wait.WaitOutcome:
    """Poll with a live display of what remains (on stderr under --json, so stdout stays parseable)."""
    out = err_console if as_json else console
    with Live(console=out, transient=True, refresh_per_second=4) as live:
        def show(report: DrainReport, waited: float, quiet_for: float) -> None:
            live.update(drain_render.progress(report, waited, timeout, quiet_for, quiet))
        return drain_wait.wait_until_drained(check, timeout, quiet, on_poll=show)


def register(group: click.Group) -> None:
    group.add_command(drain_check)
