"""Opt-in pickled payloads (`pickle_payloads`): the one module of the new backend that pickles, and the one place
a worker unpickles. Unpickling runs code chosen by whoever wrote the bytes, so anyone who can write migrator_jobs
can run code on the workers (the trust RQ places in Redis): a worker loads a pickle only for a job that its own
configuration opts in, and refuses any other pickled row unread (docs/security.md, "Pickled payloads")."""
from __future__ import annotations

import pickle
from typing import Any

from adapters.base import JobRefused, JobSpec, PickleOptIn

# What the JSON columns of a pickled job hold: a tag tagged JSON refuses to decode (adapters/payload.py), so a
# reader that does not know the pickled_payload column (older code, `jobs show`) fails loudly instead of calling
# the job without its arguments.
ARGS_MARKER = '{"__t":"pickled","v":"args"}'
KWARGS_MARKER = '{"__t":"pickled","v":"kwargs"}'


class NotOptedIn(Exception):
    """A pickled row of a job that this worker's pickle_payloads does not name: refused, never unpickled."""


class PickledPayloadError(Exception):
    """A pickled payload that does not load on this worker (a class renamed, or not deployed here yet)."""


def carry(spec: JobSpec, opted_in: PickleOptIn, refused: JobRefused) -> tuple[str, str, bytes]:
    """The (args, kwargs, pickled_payload) columns of a job whose arguments tagged JSON refused (`refused`): the
    markers and the pickle for an opted-in job; JobRefused for any other, saying how to opt in."""
    if not opted_in.covers(spec.job_name):
        raise JobRefused(f"{refused}; or opt {spec.job_name} in to pickled payloads (pickle_payloads in "
                         "migrator.toml: read the README's risk first)") from None
    try:
        data = pickle.dumps((tuple(spec.args), dict(spec.kwargs)), protocol=pickle.DEFAULT_PROTOCOL)
    except Exception as exc:  # PicklingError, TypeError, AttributeError...: whatever pickle cannot carry
        raise JobRefused(f"{refused}; and pickle cannot carry it either ({type(exc).__name__}: {exc})") from None
    return ARGS_MARKER, KWARGS_MARKER, data


def load(job_name: str, data: bytes, opted_in: PickleOptIn) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The job's (args, kwargs), unpickled only when this worker's own configuration opts the job in."""
    if not opted_in.covers(job_name):
        raise NotOptedIn(f"the arguments of {job_name} are pickled, but this worker's pickle_payloads does not opt "
                         "it in: refused without unpickling (a pickle runs code chosen by whoever wrote the row); "
                         "if the job is yours, opt it in on the workers too and retry the job")
    try:
        # Opted in by this worker's own configuration: the operator accepted the risk (docs/security.md).
        args, kwargs = pickle.loads(data)  # noqa: S301
    except Exception as exc:
        raise PickledPayloadError(f"the pickled arguments of {job_name} do not load on this worker "
                                  f"({type(exc).__name__}: {exc})") from exc
    return tuple(args), dict(kwargs)
