"""Options shared by the commands, and the settings object they build."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich.console import Console

from migrator import config
from migrator.config import Settings

F = TypeVar("F", bound=Callable[..., Any])
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@dataclass
class AppContext:
    """What the top-level options gave (URLs), turned into Settings on demand by each command."""

    redis_url: str | None = None
    database_url: str | None = None

    def settings(self) -> Settings:
        return config.load().with_urls(self.redis_url, self.database_url)


pass_app = click.make_pass_decorator(AppContext, ensure=True)

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))
