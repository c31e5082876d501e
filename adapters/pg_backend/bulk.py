"""Bulk enqueue: many jobs written as COPY text, straight into the jobs table when their ids are new.

Why straight in: ids generated here (uuid4) cannot exist already, so the batch needs no ON CONFLICT; COPY then
inserts rows in batches, where INSERT .. ON CONFLICT inserts each row speculatively, and no staging table is written,
read and emptied (about twice the rate). Jobs given their own ids may exist already and are skipped, as enqueue
skips them: those go through the staging table and INSERT .. ON CONFLICT DO NOTHING (insert_bulk), unless the caller
has checked them in the same transaction (`checked`, a transfer's land): then straight in too, and an id inserted by
someone else since the check fails the COPY (UniqueViolation) rather than being skipped.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import psycopg

from adapters import payload
from adapters.base import DEFAULT_TIMEOUT, JobRefused, JobSpec
from adapters.pg_backend.db import Database
from adapters.spec import CALLBACKS

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # run_at of an at_front job: ahead of every other
NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})  # COPY's text format
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}  # RFC 4122's variant bits, as uuid4 sets them
LINES_PER_WRITE = 2000


def run_at(spec: JobSpec) -> datetime | None:
    """When the job may run: None for now (the server's clock), EPOCH ahead of all for at_front."""
    if spec.at_front:
        return EPOCH
    if spec.run_at is not None and spec.run_at.tzinfo is None:
        raise JobRefused("run_at must be timezone-aware (use datetime.now(timezone.utc) or enqueue_in)")
    return spec.run_at


def callbacks_json(spec: JobSpec) -> str | None:
    """The callbacks column: import path and timeout of each callback the job carries (NULL: none)."""
    if not (spec.on_success or spec.on_failure or spec.on_stopped):
        return None
    found = {name: {"func": getattr(spec, name), "timeout": spec.callback_timeouts.get(name)}
             for name in CALLBACKS if getattr(spec, name)}
    return json.dumps(found) if found else None


def new_job_ids(n: int) -> list[str]:
    """`n` random (version 4) UUIDs as text, as str(uuid.uuid4()) spells them, from one read of os.urandom."""
    digits = os.urandom(16 * n).hex()
    return [f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
            for h in (digits[i:i + 32] for i in range(0, 32 * n, 32))]


def _num(value: int | None) -> str:
    return NULL if value is None else str(int(value))


def _text(value: str) -> str:
    """A value in COPY's text format: backslash, tab, newline and carriage return escaped (JSON text included:
    its escapes are backslashes). Most values have none, and a membership test is cheaper than translate."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_ESCAPES)
    return value


class Rows:
    """The COPY lines of one batch. Straight into the table: jobs that run now (without a run_at column: the
    table's default, the transaction's now()) apart from jobs with a run_at; staged (`staging`): all in the staging
    table's columns, run_at NULL for now. `first`: per queue the earliest run_at (None: a job runs now), to know
    which queues' workers to wake."""

    def __init__(self, staging: bool, ids_generated: bool) -> None:
        self.staging = staging
        self.ids_generated = ids_generated  # hex digits and dashes: nothing to escape
        self.plain: list[str] = []  # jobs with nothing but a call (see _plain): five columns, the rest defaults
        self.now: list[str] = []
        self.at: list[str] = []
        self.first: dict[str, datetime | None] = {}
        self._names: dict[str, str] = {}  # queue and job names, escaped once per batch
        self._tails: dict[tuple[Any, ...], str] = {}

    def add(self, spec: JobSpec, job_id: str) -> None:
        """One job; JobRefused when a value or an option cannot be carried (the batch is then refused whole)."""
        args, kwargs = payload.encode_call(spec.args, dict(spec.kwargs)) if spec.args or spec.kwargs else ("[]", "{}")
        if not self.staging and _plain(spec):
            self.first[spec.queue] = None
            self.plain.append(f"{self._id(job_id)}\t{self._name(spec.queue)}\t{self._name(spec.job_name)}\t"
                              f"{_text(args)}\t{_text(kwargs)}\n")
            return
        meta = payload.encode_json(dict(spec.meta), "meta") if spec.meta else "{}"
        head = "\t".join((self._id(job_id), self._name(spec.queue),
                          self._name(spec.job_name), _text(args), _text(kwargs), _text(meta),
                          NULL if spec.description is None else _text(spec.description), str(int(spec.priority))))
        if spec.on_success or spec.on_failure or spec.on_stopped:
            tail = _tail(spec)
        else:  # the options after run_at, the same for most jobs of a batch: written once per set of values
            options = (spec.timeout, spec.result_ttl, spec.ttl, spec.failure_ttl, spec.retry)
            tail = self._tails.get(options) or self._tails.setdefault(options, _tail(spec))
        when = run_at(spec)
        if when is None:
            self.first[spec.queue] = None
            self.now.append(f"{head}\t{NULL}\t{tail}\n" if self.staging else f"{head}\t{tail}\n")
            return
        self.at.append(f"{head}\t{when.isoformat()}\t{tail}\n")
        earliest = self.first.get(spec.queue, when)
        if earliest is not None:
            self.first[spec.queue] = min(earliest, when)

    def _id(self, job_id: str) -> str:
        return job_id if self.ids_generated else _text(job_id)

    def _name(self, name: str) -> str:
        escaped = self._names.get(name)
        if escaped is None:
            escaped = self._names[name] = _text(name)
        return escaped


def _tail(spec: JobSpec) -> str:
    """The columns after run_at: timeout, the three ttls, retries and callbacks."""
    retry, callbacks = spec.retry, callbacks_json(spec)
    return "\t".join((str(DEFAULT_TIMEOUT if spec.timeout is None else int(spec.timeout)), _num(spec.result_ttl),
                      _num(spec.ttl), _num(spec.failure_ttl), str(retry.max) if retry else "0",
                      "{" + ",".join(str(int(i)) for i in retry.intervals) + "}" if retry else "{}",
                      NULL if callbacks is None else _text(callbacks)))


def _plain(spec: JobSpec) -> bool:
    """A job whose every column but id, queue, func, args and kwargs is the table's default (what most bulk
    enqueues are): fewer values to write, and for the server to parse."""
    return not (spec.meta or spec.description is not None or spec.priority or spec.timeout is not None
                or spec.result_ttl is not None or spec.ttl is not None or spec.failure_ttl is not None or spec.retry
                or spec.run_at is not None or spec.at_front or spec.on_success or spec.on_failure or spec.on_stopped)


def write(db: Database, conn: psycopg.Connection[Any], specs: Sequence[JobSpec], checked: bool = False) -> list[str]:
    """COPY the jobs in, inside the caller's transaction, and wake the workers of queues given a runnable job (one
    NOTIFY each, delivered at commit). The ids in the order of `specs`. `checked`: the caller found none of the
    given ids in the table earlier in this transaction (see the module's docstring)."""
    fresh = iter(new_job_ids(sum(1 for s in specs if s.job_id is None)))
    ids = [s.job_id or next(fresh) for s in specs]
    given = any(s.job_id is not None for s in specs)
    rows = Rows(staging=given and not checked, ids_generated=not given)
    for spec, job_id in zip(specs, ids):
        rows.add(spec, job_id)
    with conn.cursor() as cur:
        if not rows.staging:
            _copy(cur, db.queries["copy_plain_jobs"], rows.plain)
            _copy(cur, db.queries["copy_jobs"], rows.now)
            _copy(cur, db.queries["copy_jobs_at"], rows.at)
            cur.execute(db.queries["notify_queues"], {"queues": list(rows.first), "first": list(rows.first.values())},
                        prepare=True)
        else:  # ids of the caller's: any may exist already, and is skipped (insert_bulk notifies too)
            cur.execute(db.queries["create_bulk_table"])
            _copy(cur, db.queries["copy_bulk"], rows.now + rows.at)
            cur.execute(db.queries["insert_bulk"], prepare=True)
    return ids


def _copy(cur: psycopg.Cursor[Any], statement: str, lines: list[str]) -> None:
    if not lines:
        return
    with cur.copy(statement) as copy:
        for start in range(0, len(lines), LINES_PER_WRITE):
            copy.write("".join(lines[start:start + LINES_PER_WRITE]))
