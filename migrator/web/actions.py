"""What the panel's forms do, each through the domain calls the CLI makes: FlagStore edits (recorded in the audit log
under the operator's name) behind migrator.compat.gate, the new backend's failed-job operations, playbook runs.
A refusal is the domain's own error (CheckFailed, BadInput, BackendError) with the CLI's message."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrator import routing_edits, wiring
from migrator.compat import gate
from migrator.config import Settings
from migrator.errors import BadInput
from migrator.routing.flag_store import Change, validate_percent

MAX_NAME = 80


@dataclass(frozen=True, slots=True)
class Request:
    """One confirmed action from a form: what, on which job or ids, by whom."""

    action: str
    by: str  # the operator's name as typed; recorded as "<name> (web)"
    job: str = ""
    percent: str = ""
    ids: tuple[str, ...] = ()
    force: bool = False


def actor(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise BadInput("give your name: the audit log records who made each change")
    if len(name) > MAX_NAME:
        raise BadInput(f"a name of at most {MAX_NAME} characters, please")
    return f"{name} (web)"


def _job(req: Request) -> str:
    if not req.job.strip():
        raise BadInput("the job name is empty; give the dotted path, e.g. app.jobs.send_email")
    return req.job.strip()


def _report(change: Change, job: str | None, settings: Settings) -> str:
    line, recorded = routing_edits.describe(change, job, settings)
    return f"{line}; {recorded}" if recorded else line


def flip(settings: Settings, req: Request) -> str:
    store, job = wiring.flag_store(settings), _job(req)
    if not req.force:
        routing_edits.require_known(settings, store, job, "tick force")
    detail = routing_edits.compat_detail(settings, store, f"flip {job}", lambda before: gate.flipped(before, job), job, req.force)
    return _report(store.flip(job, actor(req.by), detail), job, settings)


def flip_back(settings: Settings, req: Request) -> str:
    store, job = wiring.flag_store(settings), _job(req)
    if not req.force:
        routing_edits.require_known(settings, store, job, "tick force")
    return _report(store.pin(job, actor(req.by)), job, settings)


def unflip(settings: Settings, req: Request) -> str:
    store, job = wiring.flag_store(settings), _job(req)
    change = store.unflip(job, actor(req.by))
    if change.entry is None and job not in change.before.flipped | change.before.pinned:
        raise BadInput(f"{job!r} is neither flipped nor pinned, so there is nothing to unflip")
    return _report(change, job, settings)


def rollout(settings: Settings, req: Request) -> str:
    store = wiring.flag_store(settings)
    everything = req.percent.strip().lower() == "all"
    try:
        share = None if everything else validate_percent(float(req.percent))
    except ValueError:
        raise BadInput(f"a rollout takes a percentage between 0 and 100 or all, got {req.percent!r}") from None
    action = "rollout --all" if share is None else f"rollout --percent {share:g}"
    detail = routing_edits.compat_detail(settings, store, action, lambda before: gate.rolled_out(before, share), None, req.force)
    by = actor(req.by)
    change = store.rollout_all(by, detail) if share is None else store.rollout_percent(share, by, detail)
    return _report(change, None, settings)


def rollback(settings: Settings, req: Request) -> str:
    change = wiring.flag_store(settings).rollback(actor(req.by))
    line = _report(change, None, settings)
    if change.entry is not None and change.entry.restore_commands:
        line += "; to redo what was rolled back: " + "; ".join(change.entry.restore_commands)
    return line


def _failed(settings: Settings, req: Request, verb: str, act: Callable[[Any, list[str] | None, str | None], int]) -> str:
    """Retry or delete the failed jobs of one job name, or the given ids, on the new backend."""
    actor(req.by)  # who asked is required here too, though the new backend keeps no audit of it
    ids = [i.strip() for i in req.ids if i.strip()] or None
    name = req.job.strip() or None
    if (ids is None) == (name is None):
        raise BadInput("choose the failed jobs of one job name or give their ids")
    backend = wiring.postgres_backend(settings)
    try:
        n = act(backend, ids, name)
    finally:
        backend.close()
    what = f"ids {', '.join(ids)}" if ids else f"{name}"
    return f"{verb} {n} failed job{'' if n == 1 else 's'} of {what} on the new backend"


def retry_failed(settings: Settings, req: Request) -> str:
    return _failed(settings, req, "retried", lambda b, ids, name: b.retry_failed(ids, name))


def delete_failed(settings: Settings, req: Request) -> str:
    return _failed(settings, req, "deleted", lambda b, ids, name: b.delete_failed(ids, name))


ROUTING: dict[str, Callable[[Settings, Request], str]] = {
    "flip": flip, "flip-back": flip_back, "unflip": unflip, "rollout": rollout, "rollback": rollback,
    "retry-failed": retry_failed, "delete-failed": delete_failed,
}

TITLES = {
    "flip": "Flip {job} to the new backend (Postgres)",
    "flip-back": "Pin {job} to the legacy backend (RQ)",
    "unflip": "Unflip {job}: back to the rollout rule",
    "rollout": "Roll out {percent} of job names to the new backend",
    "rollback": "Roll back: every job to the legacy backend (RQ)",
    "retry-failed": "Retry the failed jobs of {what} on the new backend",
    "delete-failed": "Delete the failed jobs of {what} on the new backend",
    "playbook-run": "Run playbook {playbook}",
    "playbook-abort": "Abort the run of playbook {playbook}",
}
