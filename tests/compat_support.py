"""Helpers of the compat tests: the fixture app (tests/compat_app) installed at one version as `app.jobs` in a
directory, importable in this process or by a `migrator` command run there."""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, subprocess_env

VERSIONS = ROOT / "tests" / "compat_app"


def write_app(where: Path, version: str, job_modules: tuple[str, ...] = ("app.jobs",)) -> Path:
    """`where/app/jobs.py` at `version` (v1, v2, v3) and a migrator.toml naming it; returns `where`."""
    (where / "app").mkdir(parents=True, exist_ok=True)
    (where / "app" / "__init__.py").write_text("")
    shutil.copyfile(VERSIONS / f"{version}.py", where / "app" / "jobs.py")
    shutil.rmtree(where / "app" / "__pycache__", ignore_errors=True)  # a version swapped within a second
    modules = ", ".join(f'"{m}"' for m in job_modules)
    (where / "migrator.toml").write_text(f"job_modules = [{modules}]\n")
    forget_app()
    return where


def forget_app() -> None:
    """Drop `app` from this process's imports, so that the next import reads the version on disk now."""
    for name in [m for m in sys.modules if m == "app" or m.startswith("app.")]:
        del sys.modules[name]
    importlib.invalidate_caches()


def run_in(where: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m migrator ARGS` with `where` as working directory, as an app's CI would run it."""
    env.setdefault("COLUMNS", "200")
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return subprocess.run([sys.executable, "-m", "migrator", *args], cwd=where, capture_output=True, text=True,
                          timeout=timeout, env=subprocess_env(PYTHONPATH=f"{ROOT}{os.pathsep}{where}", **env))
