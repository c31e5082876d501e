"""Known job names: the functions of the configured job modules plus every name the router has routed."""
from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Iterable

from adapters.base import RoutingStore
from migrator.errors import BadInput


def module_jobs(modules: Iterable[str]) -> list[str]:
    """`module.function` for every public function defined in each module (not the ones it imports)."""
    names: list[str] = []
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # any error while importing the app's code is a configuration problem
            raise BadInput(f"cannot import job module {module_name!r} ({type(exc).__name__}: {exc}); "
                           "fix job_modules in migrator.toml or PYTHONPATH") from exc
        for attr, value in vars(module).items():
            if inspect.isfunction(value) and value.__module__ == module.__name__ and not attr.startswith("_"):
                names.append(f"{module.__name__}.{attr}")
    return sorted(names)


def known_jobs(store: RoutingStore, modules: Iterable[str]) -> list[str]:
    """The configured modules' jobs and the names the router has seen (batched by cache.CachedFlags.record_seen)."""
    return sorted(set(module_jobs(modules)) | set(store.seen_jobs()))


def closest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Known names a typo most likely meant; a bare function name matches its dotted paths first."""
    known = list(known)
    tail = name.rsplit(".", 1)[-1]
    same_function = [k for k in known if k.rsplit(".", 1)[-1] == tail and k != name]
    fuzzy = difflib.get_close_matches(name, known, n=n, cutoff=0.6)
    return list(dict.fromkeys([*same_function, *fuzzy]))[:n]
