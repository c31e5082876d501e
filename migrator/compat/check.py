"""`compat check`: the code's job signatures against the lock file, every difference classified for both
directions of a rolling deploy. diff() and diff_signature() are pure; check_code() reads the lock and the code."""
from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrator.compat import lockfile
from migrator.compat.changes import Change, ChangeKind, directions
from migrator.compat.signatures import VARIADIC, JobSignature, Kind, Param, code_signatures
from migrator.config import Settings

RENAME_SIMILARITY = 0.5  # difflib ratio of the function names above which a deleted + new job pair is a rename
_ACCEPTS = {Kind.POSITIONAL_ONLY: {"positional"}, Kind.POSITIONAL_OR_KEYWORD: {"positional", "keyword"},
            Kind.KEYWORD_ONLY: {"keyword"}}


@dataclass(frozen=True, slots=True)
class CheckReport:
    lock_file: str
    jobs: int  # jobs compared (in the lock or in the code)
    changes: tuple[Change, ...]

    @property
    def breaking(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.breaking)

    @property
    def ok(self) -> bool:
        return not self.breaking

    def summary(self) -> str:
        if self.ok:
            return f"{self.jobs} jobs match {self.lock_file} ({len(self.changes)} safe changes)"
        names = sorted({c.job_name for c in self.breaking})
        return (f"{len(self.breaking)} breaking changes in {len(names)} jobs against {self.lock_file}: "
                f"{', '.join(names[:5])}{' …' if len(names) > 5 else ''}")

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "lock_file": self.lock_file, "jobs": self.jobs, "summary": self.summary(),
                "breaking": len(self.breaking), "changes": [c.to_json() for c in self.changes]}


def check_code(settings: Settings) -> CheckReport:
    """The code now (job_modules, plus every locked name that still resolves) against the lock file."""
    path = Path(settings.lock_file)
    locked = lockfile.read(path)
    code = code_signatures(settings.job_modules, also=locked)
    return CheckReport(str(path), len(set(locked) | set(code)), tuple(diff(locked, code)))


def diff(locked: Mapping[str, JobSignature], code: Mapping[str, JobSignature]) -> list[Change]:
    """Every difference between two sets of signatures, job by job, in name order."""
    gone = sorted(set(locked) - set(code))
    added = sorted(set(code) - set(locked))
    changes: list[Change] = []
    for old_name in gone:
        new_name = _renamed_to(locked[old_name], [code[n] for n in added])
        if new_name is None:
            changes.append(Change(ChangeKind.DELETED_JOB, old_name, "the job function is gone; payloads already "
                                  "enqueued under this name will fail", directions(True, False)))
            continue
        added.remove(new_name)
        changes.append(Change(ChangeKind.RENAMED_JOB, new_name, f"{old_name} looks renamed to {new_name} (same "
                              "signature, similar name)", directions(True, True), old_job=old_name))
    changes += [Change(ChangeKind.NEW_JOB, n, "a new job") for n in added]
    for name in sorted(set(locked) & set(code)):
        changes += diff_signature(locked[name], code[name])
    return sorted(changes, key=lambda c: (c.job_name, c.kind.value, c.param or ""))


def _renamed_to(old: JobSignature, candidates: list[JobSignature]) -> str | None:
    """The new job most likely renamed from `old`: same shape (kinds and defaults), closest function name."""
    tail = old.job_name.rsplit(".", 1)[-1]
    best, best_score = None, 0.0
    for new in candidates:
        if new.shape() != old.shape():
            continue
        score = difflib.SequenceMatcher(None, tail, new.job_name.rsplit(".", 1)[-1]).ratio()
        if [p.name for p in new.params] == [p.name for p in old.params]:
            score += 0.1  # same parameter names: more likely the same job
        if score >= RENAME_SIMILARITY and score > best_score:
            best, best_score = new.job_name, score
    return best


def absorbs(sig: JobSignature, p: Param) -> bool:
    """Whether `sig` accepts an argument for `p` it does not name, however a caller passes it."""
    star, stars = sig.variadic(Kind.VAR_POSITIONAL), sig.variadic(Kind.VAR_KEYWORD)
    if p.kind is Kind.POSITIONAL_ONLY:
        return star is not None
    if p.kind is Kind.KEYWORD_ONLY:
        return stars is not None
    return star is not None and stars is not None


def diff_signature(old: JobSignature, new: JobSignature) -> list[Change]:
    """The differences of one job's signature, in the words of ChangeKind."""
    job = new.job_name
    changes = _variadic_changes(old, new)
    named_old = [p for p in old.params if p.kind not in VARIADIC]
    named_new = [p for p in new.params if p.kind not in VARIADIC]
    new_names, old_names = {p.name for p in named_new}, {p.name for p in named_old}
    removed = [p for p in named_old if p.name not in new_names]
    added = [p for p in named_new if p.name not in old_names]
    renames = _renames(old, new, removed, added)
    for o, n in renames:
        removed.remove(o)
        added.remove(n)
        if o.kind is Kind.POSITIONAL_ONLY and n.kind is Kind.POSITIONAL_ONLY:
            continue  # a positional-only name is never in a payload
        changes.append(Change(ChangeKind.RENAMED_PARAM, job, f"{o.name!r} renamed {n.name!r}: payloads passing "
                              f"{o.name}= fail on the new code, {n.name}= on the old", directions(True, True), n.name))
    for p in added:
        if p.required:
            changes.append(Change(ChangeKind.NEW_REQUIRED, job, f"new required parameter {p.name!r}: payloads "
                                  "without it fail", directions(True, not absorbs(old, p)), p.name))
        else:
            changes.append(Change(ChangeKind.NEW_OPTIONAL, job, f"new optional parameter {p.name!r}", (), p.name))
    for p in removed:
        changes.append(Change(ChangeKind.REMOVED_PARAM, job, f"parameter {p.name!r} removed: payloads that still "
                              f"pass it fail", directions(not absorbs(new, p), p.required), p.name))
    for o in named_old:
        same = new.param(o.name)
        if same is not None and same.kind not in VARIADIC:
            changes += _param_changes(job, o, same)
    changes += _order_changes(job, old, new, renames, added)
    return changes


def _variadic_changes(old: JobSignature, new: JobSignature) -> list[Change]:
    out: list[Change] = []
    for kind in (Kind.VAR_POSITIONAL, Kind.VAR_KEYWORD):
        o, n = old.variadic(kind), new.variadic(kind)
        if o and not n:
            out.append(Change(ChangeKind.REMOVED_PARAM, new.job_name, f"{o} removed: payloads passing extra "
                              "arguments fail", directions(True, False), o.name))
        elif n and not o:
            out.append(Change(ChangeKind.NEW_OPTIONAL, new.job_name, f"{n} added", (), n.name))
    return out


def _renames(old: JobSignature, new: JobSignature, removed: list[Param],
             added: list[Param]) -> list[tuple[Param, Param]]:
    """A removed and an added parameter at the same place with the same kind are one parameter renamed; so are
    the only removed and the only added keyword-only parameters."""
    pairs = [(o, n) for o in removed for n in added
             if o.kind is n.kind and old.params.index(o) == new.params.index(n)]
    rest_o = [p for p in removed if all(p is not o for o, _ in pairs)]
    rest_n = [p for p in added if all(p is not n for _, n in pairs)]
    if len(rest_o) == len(rest_n) == 1 and rest_o[0].kind is rest_n[0].kind is Kind.KEYWORD_ONLY:
        pairs.append((rest_o[0], rest_n[0]))
    return pairs


def _param_changes(job: str, o: Param, n: Param) -> list[Change]:
    out: list[Change] = []
    if o.kind is not n.kind:
        before, after = _ACCEPTS[o.kind], _ACCEPTS[n.kind]
        out.append(Change(ChangeKind.CHANGED_KIND, job, f"{o.name!r} was {o.kind.value}, now {n.kind.value}",
                          directions(not before <= after, not after <= before), o.name))
    if o.has_default and not n.has_default:
        out.append(Change(ChangeKind.REMOVED_DEFAULT, job, f"{o.name!r} lost its default: payloads without it "
                          "fail", directions(True, False), o.name))
    elif n.has_default and not o.has_default:
        out.append(Change(ChangeKind.ADDED_DEFAULT, job, f"{o.name!r} has a default now", (), o.name))
    if o.annotation != n.annotation:
        out.append(Change(ChangeKind.ANNOTATION, job, f"{o.name!r} annotated {o.annotation or '-'} -> "
                          f"{n.annotation or '-'}", (), o.name))
    return out


def _order_changes(job: str, old: JobSignature, new: JobSignature, renames: list[tuple[Param, Param]],
                   added: list[Param]) -> list[Change]:
    """Positional payloads bind by place: a reorder, or a new parameter put before an existing positional one,
    hands values to the wrong parameters (silently when the count still fits)."""
    renamed = {o.name: n.name for o, n in renames}
    new_pos = [p.name for p in new.positional]
    old_pos = [renamed.get(p.name, p.name) for p in old.positional]
    common = [name for name in old_pos if name in new_pos]
    in_new_order = [name for name in new_pos if name in common]
    if common != in_new_order:
        return [Change(ChangeKind.REORDERED, job, f"positional order {', '.join(common)} -> "
                       f"{', '.join(in_new_order)}", directions(True, True))]
    inserted = {p.name for p in added if p.positional}
    if common:
        before_last = set(new_pos[:new_pos.index(common[-1])]) & inserted
        if before_last:
            return [Change(ChangeKind.REORDERED, job, f"{', '.join(sorted(before_last))} inserted before "
                           f"{common[-1]!r}: positional payloads shift onto the wrong parameters",
                           directions(True, True), sorted(before_last)[0])]
    return []
