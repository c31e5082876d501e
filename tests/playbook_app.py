"""A stand-in app process for the propagation gate: it routes with its own flag cache, refreshed every argv[1]
seconds, and reports its routing version like any app process (REDIS_URL / DATABASE_URL from the environment)."""
from __future__ import annotations

import sys
import time
from dataclasses import replace

from migrator import config, wiring

if __name__ == "__main__":
    settings = replace(config.load(), flag_cache_seconds=float(sys.argv[1]))
    flags = wiring.cached_flags(settings).start()
    print(f"ready version {flags.snapshot().version}", flush=True)
    time.sleep(600)
