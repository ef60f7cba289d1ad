"""The layout's import rules: the shared package `salespulse/` imports none of its consumers (training,
service, the command line); training and service never import each other; only the CLI knows them all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "salespulse": {"training", "service", "cli"},
    "training": {"service", "cli"},
    "service": {"training", "cli"},
}


def imported_packages(file: Path) -> set[str]:
    """Top-level packages a module imports, wherever the import stands (inside functions too)."""
    tree = ast.parse(file.read_text(), filename=str(file))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_none_of_its_consumers(package: str) -> None:
    files = sorted((REPO_ROOT / package).rglob("*.py"))
    assert files, f"no modules under {package}/"
    offenders = {
        str(f.relative_to(REPO_ROOT)): sorted(imported_packages(f) & FORBIDDEN[package]) for f in files
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_the_rule_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from service.build import build_all\n    import training.tracking\n")
    assert imported_packages(module) == {"service", "training"}
