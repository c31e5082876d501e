"""`migrator web [--host --port]`: serve the control panel (migrator.web) with uvicorn, behind a token."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from migrator.cli.options import AppContext, pass_app
from migrator.errors import BadInput

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_ENV = "MIGRATOR_WEB_TOKEN"  # noqa: S105 - the name of the variable, not a secret


@click.command("web")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback exposes routing actions to the network.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--playbooks", "playbook_dir", default="playbooks", show_default=True,
              type=click.Path(file_okay=False), help="Where the plans the page can run live.")
@click.option("--refresh", default=2.0, show_default=True, type=click.FloatRange(0.5, 600),
              help="Seconds between the overview's refreshes.")
@pass_app
def web(app: AppContext, host: str, port: int, playbook_dir: str, refresh: float) -> None:
    """The control panel: both backends side by side, routing actions behind the same gates (token + CSRF)."""
    try:
        import uvicorn  # the web extra: `pip install 'migrator[web]'`
        from migrator.web import app as web_app
        from migrator.web import security
    except ImportError as exc:
        raise BadInput(f"the web panel needs its extra ({exc.name} is missing): pip install 'migrator[web]'") from None
    settings = app.settings()
    if os.getcwd() not in sys.path:  # like `rq worker`, the app's job modules import from the working directory
        sys.path.insert(0, os.getcwd())
    token = os.environ.get(TOKEN_ENV) or security.new_token()
    shown = "" if os.environ.get(TOKEN_ENV) else f"?token={token}"
    click.echo(f"migrator web: open http://{host}:{port}/{shown}" + (
        f"  (token from {TOKEN_ENV})" if not shown else "  (this token is printed once; set "
                                                         f"{TOKEN_ENV} to choose it)"), err=True)
    if host not in LOOPBACK:
        click.echo(f"warning: listening on {host}: anyone who reaches it and has the token can change routing; "
                   "put it behind TLS", err=True)
    asgi = web_app.create_app(settings, token, Path(playbook_dir), refresh)
    uvicorn.run(asgi, host=host, port=port, log_level="warning", access_log=False)


def register(group: click.Group) -> None:
    group.add_command(web)
