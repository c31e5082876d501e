"""Job functions for bench/bench_backend.py, importable by RQ and by the new backend's worker as bench.jobs.*."""
from __future__ import annotations

import os
import time


def noop() -> None:
    """The job whose cost is all queue overhead."""


def stamp(path: str) -> None:
    """Write the worker-side start time (time.time()) to `path`, for pickup latency.
    Written to a temporary name and renamed, so the reader never sees a half-written number."""
    now = time.time()
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(repr(now))
    os.replace(tmp, path)


def other_noop() -> None:
    """A second no-op with its own job name, for benches that route two job names differently."""


def sleep_for(seconds: float) -> None:
    """A job that takes `seconds` of wall time and no CPU (a partner call, an email), for bench_concurrency."""
    if seconds > 0:
        time.sleep(seconds)
