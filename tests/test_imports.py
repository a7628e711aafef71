"""Imports point down the layers: no cycles, lazy (function-level) imports included.

The graph is read from the source (every ``import`` statement, wherever it stands), as
import-linter/grimp read it, so a lazy import that only hides a cycle still counts.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tfrewind"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """``module → tfrewind modules it imports`` (absolute and relative, at any depth of the file)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # ``from .pkg import mod`` imports the submodule; ``from .mod import name``, the module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles_through(graph: dict[str, set[str]], prefix: str) -> list[list[str]]:
    """Every module of ``prefix`` that can reach itself, with one path back to it."""
    found = []
    for start in sorted(m for m in graph if m.startswith(prefix)):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    found.append(path + [start])
                    stack.clear()
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    return found


def test_the_graph_sees_lazy_imports():
    """The reader itself: a function-level import (compare → pipeline) is an edge."""
    graph = import_graph()
    assert "tfrewind.pipeline" in graph["tfrewind.compare"]
    assert "tfrewind.compare_config" in graph["tfrewind.compare"]
    assert "tfrewind.pruning" in graph["tfrewind.retraining"]  # only inside rewind_weights


def test_no_import_cycle_through_the_compare_modules():
    assert cycles_through(import_graph(), "tfrewind.compare") == []


def test_the_report_and_the_cell_layout_sit_below_the_sweep():
    """``tfrewind report`` reads cells without importing the sweep that writes them."""
    graph = import_graph()
    for module in ("tfrewind.compare_report", "tfrewind.compare_cells", "tfrewind.compare_config"):
        assert "tfrewind.compare" not in graph[module], module


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen, stack = set(), [start]
    while stack:
        for nxt in graph[stack.pop()] - seen:
            seen.add(nxt)
            stack.append(nxt)
    return seen


def test_no_import_cycle_anywhere_in_the_package():
    """Lazy imports included: ``models/files.py`` ↔ ``pruning/`` was one (custom_objects, FixedMask)."""
    assert cycles_through(import_graph(), "tfrewind") == []


def test_loading_a_model_file_does_not_import_pruning():
    """The loader finds FixedMask in tfrewind.serialization, below both models and pruning."""
    graph = import_graph()
    assert not {m for m in reachable(graph, "tfrewind.models.files") if m.startswith("tfrewind.pruning")}
    assert "tfrewind.serialization" in graph["tfrewind.models.files"]
    assert "tfrewind.serialization" in reachable(graph, "tfrewind.pruning")


def test_config_modules_do_not_import_the_pipeline():
    graph = import_graph()
    for module in ("tfrewind.config", "tfrewind.compare_config"):
        assert "tfrewind.pipeline" not in reachable(graph, module), module


def test_the_layering_contract_holds():
    """``lint-imports`` checks pyproject.toml's contracts (layers, acyclic siblings): CI runs it here."""
    root = PACKAGE.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                             "sys.exit(lint_imports_command())"], cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_no_module_is_much_over_300_lines():
    """A module past ~300 lines holds more than one concern (pipeline.py held eight): split it by concern."""
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 320}
    assert long == {}
