"""The CLI loads each command group's module only when asked for: the name map must say every command."""
from __future__ import annotations

import importlib

import click

from migrator.cli.main import COMMANDS, cli, load_commands


def test_every_registered_command_is_in_the_map_and_loads() -> None:
    registered: dict[str, str] = {}
    for module in set(COMMANDS.values()):
        group = click.Group()
        load_commands(group, module)
        registered.update({name: module for name in group.commands})
    assert registered == COMMANDS
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name


def test_no_module_of_the_cli_is_left_out_of_the_map() -> None:
    cli_package = importlib.import_module("migrator.cli")
    from pathlib import Path
    modules = {p.stem for p in Path(cli_package.__file__).parent.glob("*.py")}
    with_commands = {m for m in modules if hasattr(importlib.import_module(f"migrator.cli.{m}"), "register")}
    assert with_commands <= set(COMMANDS.values()), with_commands - set(COMMANDS.values())
