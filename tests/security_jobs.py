"""Jobs for tests/integration/test_security.py: running one leaves a file behind, so a test can prove that a
command never ran it (drain-check, compat scan, transfer --dry-run, status only read payloads)."""
from __future__ import annotations

from pathlib import Path


def touch(path: str, *args: object, **kwargs: object) -> str:
    Path(path).write_text("job code ran")
    return path


class Trap:
    """An argument whose *unpickling* calls touch(path): RQ pickles it as (touch, (path,)). A process that reads RQ
    payloads with pickle runs that code without ever calling the job's function."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (touch, (self.path,))
