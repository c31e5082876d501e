"""What the benchmark scripts share: progress on stderr, median/min/max, and the versions a run is measured on."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import redis
import rq

ROOT = Path(__file__).resolve().parent.parent


def say(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


def stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def versions(redis_client: redis.Redis, pg: psycopg.Connection[Any], pg_settings: tuple[str, ...]) -> dict[str, str]:
    """Versions, the Postgres settings that decide durability, cores and the commit measured."""
    names = ", ".join(f"'{n}'" for n in pg_settings)
    settings: dict[str, str] = dict(pg.execute(f"SELECT name, setting FROM pg_settings WHERE name IN ({names})")
                                    .fetchall())  # type: ignore[arg-type]
    row = pg.execute("SHOW server_version").fetchone()
    return {
        "python": platform.python_version(), "rq": rq.__version__, "redis-py": redis.__version__,
        "redis-server": str(redis_client.info("server")["redis_version"]), "psycopg": psycopg.__version__,
        "postgres": str(row[0]) if row else "?",
        "postgres durability": ", ".join(f"{k}={v}" for k, v in sorted(settings.items())),
        "cpus": str(os.cpu_count()), "commit": _git("rev-parse", "--short", "HEAD")
        + (" (+ uncommitted changes)" if _git("status", "--porcelain", "--untracked-files=no") else ""),
    }
