"""The command group, and the boundary that turns errors into one line and an exit code."""
from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from adapters.base import BackendError
from adapters.urls import mask_urls_in
from migrator.cli.options import AppContext
from migrator.errors import MigratorError, exit_code_for

# Command name -> the module of migrator.cli that registers it, imported only when the command runs (or for --help):
# `migrator worker` does not pay for importing the demo, the web panel and the playbooks (about 0.3 s).
COMMANDS = {
    "db": "backend_cmds", "worker": "backend_cmds", "canary": "backend_cmds",
    "flip": "routing", "unflip": "routing", "rollout": "routing", "rollback": "routing", "status": "routing",
    "history": "routing", "transfer": "transfer", "drain-check": "drain", "jobs": "jobs", "compat": "compat",
    "playbook": "playbook", "web": "web", "metrics": "metrics", "periodic": "periodic", "demo": "demo",
}


class MaskUrls(logging.Filter):
    """Every log line of a migrator command (the worker's included) with URL passwords masked, whoever logs it:
    a library's message or a job's exception may quote a connection string."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask_urls_in(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_urls_in(logging.Formatter().formatException(record.exc_info))
        return True


class Group(click.Group):
    """Errors of the toolkit and of the backends, and a command's bad options, end the command with one line, never a
    traceback. Commands are loaded from their module when first asked for (COMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            load_commands(self, COMMANDS[cmd_name])
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (MigratorError, BackendError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exit_code_for(exc))
        except click.UsageError as exc:  # a command's bad option or argument: one line as well, not click's three
            where = exc.ctx.command_path if exc.ctx else ctx.command_path
            click.echo(f"error: {exc.format_message().rstrip('.')} (see `{where} --help`)", err=True)
            sys.exit(2)


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


def load_commands(group: click.Group, module: str) -> None:
    """Import migrator.cli.<module> and add its commands to `group`."""
    importlib.import_module(f"migrator.cli.{module}").register(group)


def main() -> None:
    cli(prog_name="migrator")
