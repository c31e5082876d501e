"""The toolkit's errors. Each carries a one-line message that says what to do; only cli/ maps them to exit codes."""
from __future__ import annotations

from adapters.base import BackendError, BackendUnavailable, JobRefused

__all__ = ["MigratorError", "CheckFailed", "BadInput", "Unreachable", "BackendUnavailable", "JobRefused",
           "BackendError", "exit_code_for"]


class MigratorError(Exception):
    """Base of the toolkit's own errors."""

    exit_code = 2


class CheckFailed(MigratorError):
    """A check ran and found a problem (exit 1)."""

    exit_code = 1


class BadInput(MigratorError):
    """The user's input cannot be used (exit 2)."""


class Unreachable(MigratorError):
    """A service the command needs cannot be reached (exit 2)."""


def exit_code_for(exc: BaseException) -> int:
    """Exit code for an error raised by the toolkit or an adapter."""
    if isinstance(exc, MigratorError):
        return exc.exit_code
    return 2
