"""The dependency rule of STYLE.md: adapters never import migrator; only wiring names concrete adapters."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_adapters_never_import_migrator():
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.split(".")[0] == "migrator")
                 for p in (ROOT / "adapters").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_cli_uses_click_or_exits():
    offenders = []
    for path in (ROOT / "migrator").rglob("*.py"):
        if "cli" in path.relative_to(ROOT / "migrator").parts:
            continue
        mods = imported_modules(path)
        if "click" in mods or "sys.exit(" in path.read_text():
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
