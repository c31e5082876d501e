"""Job signatures as frozen values: what a payload must bind to. Read by importing the job modules (never by
calling a job), and by resolving a job name the way RQ's worker does (`module.function`, `module.Class.method`)."""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from migrator.errors import BadInput
from migrator.routing import known_jobs


class Kind(StrEnum):
    POSITIONAL_ONLY = "positional_only"
    POSITIONAL_OR_KEYWORD = "positional_or_keyword"
    VAR_POSITIONAL = "var_positional"  # *args
    KEYWORD_ONLY = "keyword_only"
    VAR_KEYWORD = "var_keyword"  # **kwargs


_KINDS = {inspect.Parameter.POSITIONAL_ONLY: Kind.POSITIONAL_ONLY,
          inspect.Parameter.POSITIONAL_OR_KEYWORD: Kind.POSITIONAL_OR_KEYWORD,
          inspect.Parameter.VAR_POSITIONAL: Kind.VAR_POSITIONAL,
          inspect.Parameter.KEYWORD_ONLY: Kind.KEYWORD_ONLY,
          inspect.Parameter.VAR_KEYWORD: Kind.VAR_KEYWORD}
POSITIONAL = frozenset({Kind.POSITIONAL_ONLY, Kind.POSITIONAL_OR_KEYWORD})
VARIADIC = frozenset({Kind.VAR_POSITIONAL, Kind.VAR_KEYWORD})


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: Kind
    has_default: bool = False
    annotation: str = ""  # as text, "" when absent: reviewers read it, binding ignores it

    @property
    def required(self) -> bool:
        return not self.has_default and self.kind not in VARIADIC

    @property
    def positional(self) -> bool:
        return self.kind in POSITIONAL

    @property
    def by_keyword(self) -> bool:
        return self.kind in (Kind.POSITIONAL_OR_KEYWORD, Kind.KEYWORD_ONLY)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind.value, "has_default": self.has_default,
                "annotation": self.annotation}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Param":
        return cls(str(data["name"]), Kind(data["kind"]), bool(data.get("has_default", False)),
                   str(data.get("annotation", "")))

    def __str__(self) -> str:
        prefix = {Kind.VAR_POSITIONAL: "*", Kind.VAR_KEYWORD: "**"}.get(self.kind, "")
        note = f": {self.annotation}" if self.annotation else ""
        return f"{prefix}{self.name}{note}{'=…' if self.has_default else ''}"


@dataclass(frozen=True, slots=True)
class JobSignature:
    job_name: str
    params: tuple[Param, ...] = ()

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def variadic(self, kind: Kind) -> Param | None:
        return next((p for p in self.params if p.kind is kind), None)

    @property
    def positional(self) -> list[Param]:
        return [p for p in self.params if p.positional]

    def shape(self) -> tuple[tuple[Kind, bool], ...]:
        """What binding depends on apart from names: used to recognise a renamed job."""
        return tuple((p.kind, p.has_default) for p in self.params)

    def to_json(self) -> dict[str, Any]:
        return {"job": self.job_name, "params": [p.to_json() for p in self.params]}

    def __str__(self) -> str:
        return f"{self.job_name}({', '.join(str(p) for p in self.params)})"


def annotation_text(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, str):  # `from __future__ import annotations` keeps them as written
        return annotation
    if isinstance(annotation, type):
        return annotation.__qualname__ if annotation.__module__ == "builtins" else \
            f"{annotation.__module__}.{annotation.__qualname__}"
    return str(annotation).replace("typing.", "")


def signature_of(job_name: str, func: Callable[..., Any]) -> JobSignature:
    """The signature as values; raises ValueError/TypeError for a callable inspect cannot read."""
    sig = inspect.signature(func)
    return JobSignature(job_name, tuple(
        Param(p.name, _KINDS[p.kind], p.default is not inspect.Parameter.empty, annotation_text(p.annotation))
        for p in sig.parameters.values()))


class Unresolvable(Exception):
    """A job name that names nothing importable now; the message says what failed."""


def resolve(job_name: str) -> Callable[..., Any]:
    """The callable a worker would run for `job_name`: the longest importable module prefix, then attributes.
    Imports the app's module (its import-time code runs), never calls the job."""
    parts = job_name.split(".")
    error: BaseException | None = None
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            target: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):  # this prefix is not a module: try a shorter one
                error = error or exc
                continue
            raise Unresolvable(f"importing {module_name} fails: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # the app's module fails at import time: exactly what a worker would hit
            raise Unresolvable(f"importing {module_name} fails: {type(exc).__name__}: {exc}") from exc
        for attr in parts[cut:]:
            if not hasattr(target, attr):
                raise Unresolvable(f"{'.'.join(parts[:cut])} has no attribute {'.'.join(parts[cut:])!r}")
            target = getattr(target, attr)
        if not callable(target):
            raise Unresolvable(f"{job_name} is not callable")
        return target  # type: ignore[no-any-return]
    raise Unresolvable(f"no module of {job_name!r} imports ({error})" if error else f"{job_name!r} is not dotted")


def code_signatures(modules: Iterable[str], also: Iterable[str] = ()) -> dict[str, JobSignature]:
    """Signatures of every job of `modules` (BadInput when one does not import) and of the names in `also`
    that resolve now (job names the router has seen, or names in the lock file); the rest are left out."""
    optional = set(also)
    found: dict[str, JobSignature] = {}
    for name in [*known_jobs.module_jobs(modules), *sorted(optional)]:
        if name in found:
            continue
        try:
            found[name] = signature_of(name, resolve(name))
        except Unresolvable as exc:
            if name in optional:
                continue
            raise BadInput(f"cannot resolve job {name}: {exc}") from exc
        except (ValueError, TypeError) as exc:
            raise BadInput(f"cannot read the signature of {name} ({exc})") from exc
    return dict(sorted(found.items()))

