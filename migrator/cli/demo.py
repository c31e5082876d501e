"""`migrator demo`: a migration under live load on local servers, ending in a ledger."""
from __future__ import annotations

import click


@click.command()
def demo() -> None:
    """Run a whole migration under load on embedded local servers."""
    raise click.ClickException("not yet")
