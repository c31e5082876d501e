"""The command group, and the boundary that turns errors into one line and an exit code."""
from __future__ import annotations

import logging
import sys
from typing import Any

import click

from adapters.base import BackendError
from adapters.urls import mask_urls_in
from migrator.cli import backend_cmds, demo, drain, jobs, routing
from migrator.cli import compat as compat_cli
from migrator.cli import metrics as metrics_cli
from migrator.cli import periodic as periodic_cli
from migrator.cli import playbook as playbook_cli
from migrator.cli import transfer as transfer_cli
from migrator.cli import web as web_cli
from migrator.cli.options import AppContext
from migrator.errors import MigratorError, exit_code_for


class MaskUrls(logging.Filter):
    """Every log line of a migrator command (the worker's included) with URL passwords masked, whoever logs it:
    a library's message or a job's exception may quote a connection string."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask_urls_in(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_urls_in(logging.Formatter().formatException(record.exc_info))
        return True


class Group(click.Group):
    """Errors of the toolkit and of the backends end the command with one line, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (MigratorError, BackendError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exit_code_for(exc))


@click.group(cls=Group)
@click.option("--redis-url", envvar="REDIS_URL", help="Redis of the legacy backend (RQ) [env REDIS_URL].")
@click.option("--database-url", envvar="DATABASE_URL", help="Postgres of the new backend [env DATABASE_URL].")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.pass_context
def cli(ctx: click.Context, redis_url: str | None, database_url: str | None, verbose: bool) -> None:
    """Move background jobs from RQ to a Postgres job queue, one job at a time."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(MaskUrls())
    ctx.obj = AppContext(redis_url, database_url)


backend_cmds.register(cli)
routing.register(cli)
transfer_cli.register(cli)
drain.register(cli)
jobs.register(cli)
compat_cli.register(cli)
playbook_cli.register(cli)
web_cli.register(cli)
metrics_cli.register(cli)
periodic_cli.register(cli)
cli.add_command(demo.demo)


def main() -> None:
    cli(prog_name="migrator")
