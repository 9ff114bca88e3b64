"""The layer contract (pyproject.toml's [tool.importlinter], docs/architecture.md) holds, has no
import cycle, and really fails when an import points the wrong way.

`make lint` runs the same contract before the suite; these tests show that it can fail: a copy
of the package with one wrong-direction import (the contract layer reaching up into the CLI)
and one with a cycle inside a stage are both refused, naming the offending import.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over the packages under ``root`` (the project's own config)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(PROJECT_DIR / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def module_cycles(package: str) -> list[list[str]]:
    """Strongly connected groups of more than one module in ``package``'s import graph
    (imports inside functions count: a deferred import is still a dependency)."""
    graph = grimp.build_graph(package, cache_dir=None)
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & graph.modules) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in edges[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in modules:
        if module not in index:
            visit(module)
    return groups


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """The project's importable packages, copied where a test may break them."""
    for name in ("lakehouse", "jobs"):
        shutil.copytree(PROJECT_DIR / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_layers_contract_is_kept() -> None:
    result = lint_imports(PROJECT_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_layers_have_no_import_cycle() -> None:
    assert module_cycles("lakehouse") == []


def test_layers_contract_fails_on_a_wrong_direction_import(package_copy: Path) -> None:
    schemas = package_copy / "lakehouse" / "contract" / "schemas.py"
    schemas.write_text(schemas.read_text() + "\n\ndef _reach_up():\n    from lakehouse.cli import app  # wrong\n")

    result = lint_imports(package_copy)

    assert result.returncode == 1
    assert "BROKEN" in result.stdout
    assert "lakehouse.contract is not allowed to import lakehouse.cli" in result.stdout


def test_layers_cycle_check_finds_a_cycle(package_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = package_copy / "lakehouse" / "ml" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\n\ndef _loop():\n    from lakehouse.ml import registry  # cycle\n")
    monkeypatch.syspath_prepend(str(package_copy))
    for name in [m for m in sys.modules if m == "lakehouse" or m.startswith("lakehouse.")]:
        monkeypatch.delitem(sys.modules, name)

    cycles = module_cycles("lakehouse")

    assert any("lakehouse.ml.metrics" in group and "lakehouse.ml.registry" in group for group in cycles), cycles


def test_modules_over_400_lines_say_in_their_docstring_why_they_are_one_thing() -> None:
    """Past about 400 lines a module is split, unless it is one cohesive thing and its docstring
    says why (with the words "400 lines", so the reason is findable)."""
    import ast

    unexplained = []
    for path in sorted((PROJECT_DIR / "lakehouse").rglob("*.py")) + sorted((PROJECT_DIR / "jobs").rglob("*.py")):
        source = path.read_text()
        if source.count("\n") > 400 and "400 lines" not in (ast.get_docstring(ast.parse(source)) or ""):
            unexplained.append(f"{path.relative_to(PROJECT_DIR)}: {source.count(chr(10))} lines")
    assert unexplained == []
