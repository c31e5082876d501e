"""Failpoints for fault tests: `MIGRATOR_FAILPOINT=<name>` makes a run stop dead at that point (it sleeps until
killed), so a test can SIGKILL it at an exact instant, e.g. after a routing change and before its record."""
from __future__ import annotations

import os
import time

ENV = "MIGRATOR_FAILPOINT"


def reach(name: str) -> None:
    """Hang here when the failpoint `name` is armed; nothing otherwise (one environment read)."""
    if os.environ.get(ENV) == name:
        while True:
            time.sleep(3600)
