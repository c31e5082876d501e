"""`migrator metrics`: serve Prometheus metrics of both backends and the routing, read on every scrape."""
from __future__ import annotations

import signal
import threading
from typing import Any

import click
from prometheus_client import start_http_server
from prometheus_client.registry import CollectorRegistry

from migrator import wiring
from migrator.cli.options import AppContext, console, pass_app
from migrator.metrics import MigrationCollector


@click.command("metrics")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=9726, show_default=True, type=click.IntRange(1, 65535))
@pass_app
def metrics(app: AppContext, host: str, port: int) -> None:
    """Serve Prometheus metrics (/metrics): queue depths, finished and failed jobs per job name, workers and
    routing of both backends; names in docs/metrics.md."""
    settings = app.settings()
    legacy, new = wiring.rq_backend(settings), wiring.postgres_backend(settings)
    registry = CollectorRegistry()
    registry.register(MigrationCollector([legacy, new], wiring.flag_store(settings)))
    server, thread = start_http_server(port, addr=host, registry=registry)
    console.print(f"serving metrics on http://{host}:{port}/metrics")
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stop.wait()
    finally:
        server.shutdown()
        thread.join(5)
        legacy.close()
        new.close()


def register(group: click.Group) -> None:
    group.add_command(metrics)
