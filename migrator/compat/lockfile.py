"""The lock file (`lock_file`, default migrator.lock.json): every known job's signature, committed with the code.

Written in a stable order with one parameter per line, so that a signature change reviews as a one-line diff.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrator.compat.signatures import JobSignature, Kind, Param, code_signatures
from migrator.config import Settings
from migrator.errors import BadInput

FORMAT = 1  # bump when the layout changes; read() refuses formats it does not know
HEADER = "written by `migrator compat snapshot`; commit it with the code, `migrator compat check` compares against it"


def render(signatures: Mapping[str, JobSignature]) -> str:
    """The lock file's text: jobs sorted by name, params in signature order, each param on its own line."""
    lines = ["{", f'  "format": {FORMAT},', f'  "about": {json.dumps(HEADER)},', '  "jobs": {']
    names = sorted(signatures)
    for i, name in enumerate(names):
        params = signatures[name].params
        comma = "," if i < len(names) - 1 else ""
        if not params:
            lines.append(f"    {json.dumps(name)}: []{comma}")
            continue
        lines.append(f"    {json.dumps(name)}: [")
        for j, p in enumerate(params):
            tail = "," if j < len(params) - 1 else ""
            lines.append(f"      {json.dumps(p.to_json(), sort_keys=False)}{tail}")
        lines.append(f"    ]{comma}")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def write(path: Path, signatures: Mapping[str, JobSignature]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(signatures))
    tmp.replace(path)  # a reader never sees half a lock file


def parse(text: str, where: str = "lock file") -> dict[str, JobSignature]:
    """Signatures from the lock file's text; BadInput naming `where` for anything malformed."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _malformed(where, f"not JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
        raise _malformed(where, 'no "jobs" object')
    if data.get("format") != FORMAT:
        raise _malformed(where, f"format {data.get('format')!r} is not {FORMAT}; upgrade migrator or re-snapshot")
    jobs: dict[str, JobSignature] = {}
    for name, params in data["jobs"].items():
        if not isinstance(params, list):
            raise _malformed(where, f"job {name!r} has no parameter list")
        try:
            jobs[name] = JobSignature(name, tuple(_param(p) for p in params))
        except (KeyError, ValueError, TypeError) as exc:
            raise _malformed(where, f"job {name!r} has a bad parameter ({type(exc).__name__}: {exc})") from exc
    return jobs


def _param(data: Any) -> Param:
    if not isinstance(data, dict):
        raise TypeError(f"{data!r} is not an object")
    return Param.from_json(data)


def read(path: Path) -> dict[str, JobSignature]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BadInput(f"no lock file at {path}; run `migrator compat snapshot` and commit {path.name}") from None
    except OSError as exc:
        raise BadInput(f"cannot read the lock file {path}: {exc.strerror}") from exc
    return parse(text, str(path))


def _malformed(where: str, why: str) -> BadInput:
    return BadInput(f"the lock file {where} is malformed: {why}; fix it or re-run `migrator compat snapshot`")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What `compat snapshot` wrote: the locked jobs, and the seen job names this code does not have."""

    path: str
    jobs: tuple[str, ...]
    unresolved: tuple[str, ...] = ()  # seen by the router, not importable here: left out of the lock
    changed: bool = True  # False when the file already said exactly this
    seen_note: str | None = None  # why seen job names could not be read, when they could not

    def summary(self) -> str:
        verb = "wrote" if self.changed else "unchanged:"
        return f"{verb} {self.path} ({len(self.jobs)} jobs)"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "jobs": list(self.jobs), "unresolved": list(self.unresolved),
                "changed": self.changed, "seen_note": self.seen_note, "summary": self.summary()}


def snapshot(settings: Settings, seen: Iterable[str] = (), seen_note: str | None = None) -> Snapshot:
    """Lock the signatures of the job modules' jobs and of the `seen` names that resolve in this code."""
    seen = sorted(set(seen))
    signatures = code_signatures(settings.job_modules, also=seen)
    path = Path(settings.lock_file)
    text = render(signatures)
    changed = not path.exists() or path.read_text() != text
    if changed:
        write(path, signatures)
    return Snapshot(str(path), tuple(signatures), tuple(n for n in seen if n not in signatures), changed, seen_note)


__all__ = ["FORMAT", "Kind", "Snapshot", "parse", "read", "render", "snapshot", "write"]
