"""What an operator's routing change needs around the FlagStore edit, the same from the CLI and the web panel:
the known-job check, the compat gate over both backends, and the sentence that reports the change."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from migrator import wiring
from migrator.compat import gate
from migrator.config import Settings
from migrator.errors import BadInput
from migrator.routing import history, known_jobs
from migrator.routing import router as routing_router
from migrator.routing.decide import decide
from migrator.routing.flag_store import Change, FlagStore
from migrator.routing.snapshot import RoutingSnapshot


def app_on_path() -> None:
    """Like `rq worker`, the app's job modules import from the working directory."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def known(settings: Settings, store: FlagStore) -> list[str]:
    app_on_path()
    return known_jobs.known_jobs(store.tables, settings.job_modules)


def require_known(settings: Settings, store: FlagStore, job: str, override: str) -> None:
    """BadInput unless `job` is configured, seen or flagged; `override` says how to insist (--force, a checkbox)."""
    if not job.strip():
        raise BadInput("the job name is empty; give the dotted path, e.g. app.jobs.send_email")
    snapshot = store.snapshot()
    names = set(known(settings, store)) | snapshot.flipped | snapshot.pinned
    if job in names:
        return
    guesses = known_jobs.closest(job, names)
    hint = f"did you mean {', '.join(guesses)}? " if guesses else ""
    raise BadInput(f"unknown job {job!r}: not in job_modules and never routed; {hint}{override} to flip a job "
                   "not seen yet")


def compat_detail(settings: Settings, store: FlagStore, action: str,
                  after_of: Callable[[RoutingSnapshot], RoutingSnapshot], job: str | None,
                  force: bool) -> dict[str, Any] | None:
    """migrator.compat.gate before a change that moves jobs to the new backend: CheckFailed naming what would fail;
    with `force`, the audit-log detail of what was overridden."""
    app_on_path()
    before = store.snapshot()
    legacy, new = wiring.rq_backend(settings), wiring.postgres_backend(settings)
    try:
        return gate.guard(action, legacy, new, before, after_of(before), job, force, routing_router.REFUSED)
    finally:
        legacy.close()
        new.close()


def describe(change: Change, job: str | None, settings: Settings) -> tuple[str, str | None]:
    """(what changed, who recorded it and when processes follow); the second is None when nothing changed."""
    if change.entry is None:
        what = f"{job} already routes that way" if job else "the routing is already so"
        return f"{what}; nothing changed (routing version {change.after.version})", None
    line = history.summarize(change.before, change.after)
    if job:
        route = decide(job, change.after)
        line += f": {job} routes to {route.backend} ({route.reason})"
    return line, (f"recorded as change #{change.entry.id} by {change.entry.actor}; running processes follow "
                  f"within {settings.flag_cache_seconds:g}s")
