"""`db migrate`, `worker`, `canary`: the new backend's own commands."""
from __future__ import annotations

import sys

import click

from migrator import canary, wiring
from migrator.cli.options import AppContext, console, emit_json, json_option, pass_app
from migrator.config import mask_url
from migrator.errors import BadInput, CheckFailed


@click.group()
def db() -> None:
    """The new backend's Postgres schema."""


@db.command("migrate")
@json_option
@pass_app
def migrate(app: AppContext, as_json: bool) -> None:
    """Create or upgrade the schema (idempotent, versioned, safe to run from several processes at once)."""
    settings = app.settings()
    applied, version = wiring.migrate_schema(settings)
    if as_json:
        emit_json({"applied": applied, "version": version})
        return
    where = mask_url(settings.database_url)
    if applied:
        console.print(f"migrated {where}: applied {', '.join(applied)} (schema version {version})")
    else:
        console.print(f"{where} is up to date (schema version {version})")


def _queues(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    queues = tuple(q.strip() for q in value.split(",") if q.strip())
    if not queues:
        raise BadInput("--queues needs at least one queue name, e.g. --queues default,emails")
    return queues


@click.command()
@click.option("--queues", help="Comma-separated queues to serve (default: the configured queues).")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Worker processes, each running one job at a time.")
@click.option("--burst", is_flag=True, help="Exit when nothing is runnable.")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10000),
              help="Most jobs claimed per round trip (fewer unless jobs are near-instant: about 20 ms of work).")
@click.option("--recovery-grace", type=float, help="Seconds before a dead worker's jobs are requeued.")
@click.option("--shutdown-grace", default=25.0, show_default=True, type=float,
              help="After SIGTERM, seconds a running job may take before it is released.")
@click.option("--missing-function-attempts", default=10, show_default=True, type=click.IntRange(1, 1000),
              help="Attempts for a job whose function does not import on this worker.")
@click.option("--setup", metavar="MODULE:FUNCTION",
              help="Run once per worker process before any job, e.g. django.setup [config: worker_setup].")
@click.option("--exception-handler", "exception_handlers", multiple=True, metavar="MODULE:FUNCTION",
              help="RQ-style handler(job, exc_type, exc_value, tb) run when a job fails (repeatable) "
                   "[config: worker_exception_handlers].")
@pass_app
def worker(app: AppContext, queues: str | None, concurrency: int, burst: bool, batch: int,
           recovery_grace: float | None, shutdown_grace: float, missing_function_attempts: int,
           setup: str | None, exception_handlers: tuple[str, ...]) -> None:
    """Run the new backend's worker."""
    settings = app.settings()
    options = wiring.worker_options(settings, queues=_queues(queues, settings.queues), batch=batch, burst=burst,
                                    recovery_grace=recovery_grace, shutdown_grace=shutdown_grace,
                                    missing_function_attempts=missing_function_attempts, setup=setup,
                                    exception_handlers=exception_handlers or None)
    sys.exit(wiring.run_workers(settings, options, concurrency))


@click.command("canary")
@click.option("--timeout", default=30.0, show_default=True, type=float, help="Seconds to wait for a worker.")
@click.option("--queue", default="default", show_default=True)
@json_option
@pass_app
def canary_cmd(app: AppContext, timeout: float, queue: str, as_json: bool) -> None:
    """Enqueue a no-op job on the new backend and wait until a worker has performed it."""
    backend = wiring.postgres_backend(app.settings())
    try:
        result = canary.run_canary(backend, queue, timeout)
    finally:
        backend.close()
    if as_json:
        emit_json(result.to_json())
    elif result.ok:
        console.print(f"canary ok: performed in {result.seconds * 1000:.0f} ms ({result.detail})")
    if not result.ok:
        raise CheckFailed(f"canary failed: {result.detail} (job {result.job_id}, state {result.state})")


def register(group: click.Group) -> None:
    group.add_command(db)
    group.add_command(worker)
    group.add_command(canary_cmd)
