"""The floor plan: which module may import which, no import circles, short functions.

Imports are read from the source (``ast``), including imports inside functions; an
import under ``if TYPE_CHECKING:`` is a type hint, not a dependency, and is left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("indexer", "search", "migrations", "bench")
LONGEST = 80  # lines a function may have, decorators included


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                hidden.update(id(n) for n in ast.walk(inner))
    return hidden


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    """The project modules an ``import``/``from ... import`` names."""
    if node.level:
        package = module.split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    names = [f"{base}.{alias.name}" for alias in node.names]
    return [n for n in names if n in MODULES] or ([base] if base in MODULES else [])


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.ImportFrom):
            found.update(_resolve(module, path, node))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
    found.discard(module)
    # A package's own __init__ re-exports its modules: importing a module runs its
    # package's __init__, but that is not this module's dependency.
    return {m for m in found if not module.startswith(m + ".")}


GRAPH = {m: imports_of(m) for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_reader_sees_relative_function_level_and_skips_type_hints(tmp_path):
    src = (
        "from typing import TYPE_CHECKING\n"
        "from .settings import Layout\n"
        "if TYPE_CHECKING:\n    from .home import FoodIndex\n"
        "def f():\n    from indexer import retrieval\n"
    )
    tree = ast.parse(src)
    hidden = _type_checking_nodes(tree)
    seen = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and id(node) not in hidden:
            seen.update(_resolve("indexer.x", ROOT / "indexer" / "x.py", node))
    assert seen == {"indexer.settings", "indexer.retrieval"}


def test_no_import_circles_between_files():
    assert _cycles(GRAPH) == []


# room -> rooms it must never import (the one-way rule: lower rooms know nothing of
# the rooms above them).
NEVER = {
    "indexer": ("search", "bench", "tests"),
    "indexer.storage": (
        "indexer.home",
        "indexer.derived",
        "indexer.retrieval",
        "indexer.mining",
        "indexer.build",
        "indexer.backups",
        "indexer.records",
        "indexer.home_model",
    ),
    "indexer.derived": ("indexer.home", "indexer.retrieval", "indexer.mining"),
    "indexer.retrieval": ("indexer.home", "indexer.mining", "indexer.backups"),
    "indexer.mining": ("indexer.home", "indexer.retrieval", "indexer.backups"),
    "indexer.cluster": ("indexer.home",),
    "indexer.neighbours": ("indexer.home", "indexer.mining", "indexer.cluster"),
    "indexer.home_model": ("indexer.home", "indexer.derived", "indexer.retrieval"),
    "indexer.records": ("indexer.home", "indexer.retrieval", "indexer.mining"),
    "indexer.backups": ("indexer.home", "indexer.retrieval", "indexer.mining"),
    "search.service": ("search.cli",),
    # the client runs in a slim install: no index, no model, no server code
    "search.client": ("search.cli", "search.service", "indexer.home", "indexer.storage"),
}


@pytest.mark.parametrize("room", sorted(NEVER))
def test_dependencies_run_one_way(room):
    bad = []
    for module, deps in GRAPH.items():
        if module == room or module.startswith(room + "."):
            for dep in deps:
                if any(dep == f or dep.startswith(f + ".") for f in NEVER[room]):
                    bad.append(f"{module} imports {dep}")
    assert bad == []


def _long_functions(path: Path) -> list[str]:
    """``file:line name (n lines)`` of each function longer than LONGEST lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            lines = node.end_lineno - first + 1
            if lines > LONGEST:
                long.append(f"{path.name}:{first} {node.name} ({lines} lines)")
    return long


def test_the_length_check_counts_decorators(tmp_path):
    body = "\n".join(f"    x = {i}" for i in range(LONGEST - 3))
    code = tmp_path / "code.py"
    code.write_text(f"@a\n@b\ndef f():\n{body}\n")  # exactly LONGEST lines
    assert _long_functions(code) == []
    code.write_text(f"@a\n@b\n@c\ndef f():\n{body}\n")
    assert _long_functions(code) == [f"code.py:1 f ({LONGEST + 1} lines)"]


def test_no_function_is_longer_than_80_lines():
    long = [f"{p.parent.name}/{f}" for p in MODULES.values() for f in _long_functions(p)]
    assert long == []
