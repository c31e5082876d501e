"""How long a routing change takes to reach another running process (the bound is flag_cache_seconds + one read,
2 s by default): a second process watches its CachedFlags and stamps the moment it sees each new version; this
process also times until the watcher's row in migrator_routers reports it (what the propagation gate reads).

    PYTHONPATH=. python bench/bench_propagation.py [--samples 20] [--refresh 1.0]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from adapters.pg_backend import schema  # noqa: E402
from migrator import wiring  # noqa: E402
from migrator.config import Settings  # noqa: E402
from migrator.routing import presence  # noqa: E402
from migrator.localservers import LocalPostgres  # noqa: E402

WATCHER = """
import sys, time
from migrator.routing.cache import CachedFlags
from migrator import wiring
from migrator.config import Settings
cached = CachedFlags(wiring.flag_store(Settings(database_url=sys.argv[1])), refresh_seconds=float(sys.argv[2])).start()
print("ready", flush=True)
seen = cached.snapshot().version
while True:
    version = cached.snapshot().version
    if version != seen:
        seen = version
        print(version, time.time(), flush=True)
    time.sleep(0.001)
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--refresh", type=float, default=1.0, help="flag_cache_seconds of the watching process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="migrator-bench-prop-") as tmp:
        server = LocalPostgres(Path(tmp) / "pg", durable=True).start()
        try:
            schema.migrate(server.url)
            seen, reported = measure(server.url, args.samples, args.refresh)
        finally:
            server.stop()
    report(f"routing change -> seen by another process (flag_cache_seconds={args.refresh})", seen, args.refresh)
    report("routing change -> reported in migrator_routers (the propagation gate's view)", reported, args.refresh)
    return 0


def report(title: str, delays: list[float], refresh: float) -> None:
    ms = sorted(d * 1000 for d in delays)
    bound = refresh * 1000 + 1000
    print(f"{title}, {len(ms)} samples: p50 {statistics.median(ms):.0f} ms, p90 {ms[int(len(ms) * 0.9) - 1]:.0f} ms, "
          f"max {ms[-1]:.0f} ms; bound {bound:.0f} ms: {'PASS' if ms[-1] <= bound else 'MISS'}")


def measure(url: str, samples: int, refresh: float) -> tuple[list[float], list[float]]:
    """(seen, reported) delays in seconds of each routing change."""
    store = wiring.flag_store(Settings(database_url=url))
    proc = subprocess.Popen([sys.executable, "-c", WATCHER, url, str(refresh)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={"PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        seen: list[float] = []
        reported: list[float] = []
        for i in range(samples):
            time.sleep(refresh * (0.3 + 0.7 * (i % 5) / 5))  # land at different points of the refresh period
            edit = store.flip if i % 2 == 0 else store.unflip
            change = edit(f"bench.jobs.job_{i - i % 2}", by="bench")
            changed = time.time()
            while not any(r.pid == proc.pid and r.version >= change.after.version
                          for r in presence.live_routers(store.tables, 60)):
                time.sleep(0.01)
            reported.append(time.time() - changed)
            _, seen_at = proc.stdout.readline().split()
            seen.append(float(seen_at) - changed)
        return seen, reported
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
