"""A minimal Flask app: its view enqueues through migrator.Queue; its job reads the app's config, so it needs an
app context in the worker (`migrator worker --setup tests.flask_app:push_app_context`)."""
from __future__ import annotations

import json

from flask import Flask, current_app

from migrator import Queue
from tests.jobs import ledger

app = Flask("migration_app")
app.config["GREETING"] = "hello from the migration app"


def record_greeting() -> str:
    return ledger(current_app.config["GREETING"])  # RuntimeError outside an app context


@app.post("/greet")
def greet() -> dict[str, str]:
    job = Queue("default").enqueue(record_greeting)
    return {"job": job.id, "backend": str(getattr(job, "backend", "rq"))}


def push_app_context() -> None:
    """The worker's set-up: one app context for the whole worker process, as Flask-RQ2's worker has."""
    app.app_context().push()


def main() -> None:
    """A request to the view, as the tests drive the app (imported, so the job's name is tests.flask_app...)."""
    with app.test_client() as client:
        print(json.dumps(client.post("/greet").get_json()))
