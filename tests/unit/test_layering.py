"""The dependency rule of STYLE.md, checked by import-linter's contracts in pyproject.toml: they pass on this
tree, and they fail, naming the import, on a copy of it with one wrong import planted."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the packages in `tree` (it puts its working directory first on the path)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["COLUMNS"] = "300"  # one import per line: rich wraps at the terminal's width
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_tree_keeps_every_layering_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("planted, line, broken", [
    ("adapters/rq_backend/planted.py", "from adapters.pg_backend import db",
     "adapters.rq_backend.planted -> adapters.pg_backend.db"),
    ("migrator/routing/planted.py", "from migrator.cli import main",
     "migrator.routing.planted -> migrator.cli.main"),
    ("adapters/base_planted.py", "import migrator.config",
     "adapters.base_planted -> migrator.config"),
    ("migrator/drain/planted.py", "from adapters.pg_backend.backend import PostgresBackend",
     "migrator.drain.planted -> adapters.pg_backend.backend"),
])
def test_a_planted_wrong_import_breaks_a_contract(tmp_path: Path, planted: str, line: str, broken: str):
    copy = tmp_path / "tree"
    for name in ("migrator", "adapters"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    (copy / planted).write_text(f'"""A wrong import, planted by the test."""\n{line}\n')
    result = lint_imports(copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert broken in result.stdout, result.stdout


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_only_cli_uses_click_or_exits():
    offenders = []
    for path in (ROOT / "migrator").rglob("*.py"):
        if "cli" in path.relative_to(ROOT / "migrator").parts:
            continue
        mods = imported_modules(path)
        if "click" in mods or "sys.exit(" in path.read_text():
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
