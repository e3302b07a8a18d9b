"""Every command has help and appears in the Reference; the environment table and the
map of the code tell the truth; the rules of the layout hold (no SQL outside storage,
no environment outside settings, imports one way)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from search.cli import cli
from tests.conftest import ROOT

DOCS = ROOT / "docs"
REFERENCE = (DOCS / "reference.md").read_text(encoding="utf-8")
LAYOUT = (DOCS / "layout.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_command_has_help_and_is_documented(name):
    command = cli.commands[name]
    assert command.help and len(command.help.strip()) > 20, name
    assert f"`foodvec {name}" in REFERENCE, f"docs/reference.md does not list `foodvec {name}`"
    res = CliRunner().invoke(cli, [name, "--help"], prog_name="foodvec")
    assert res.exit_code == 0 and "Usage: foodvec" in res.output
    for param in command.params:
        if param.param_type_name == "option" and param.name not in ("help",):
            assert param.help or param.name in (
                "epochs",
                "batch_size",
                "seed",
                "max_seq_length",
                "warmup_ratio",
                "port",
            ), f"{name} --{param.name} has no help"


# -- the layout tells the truth ---------------------------------------------------------
PACKAGES = ("indexer", "search")


def _modules() -> list[str]:
    return sorted(
        str(p.relative_to(ROOT))
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if p.name != "__init__.py"
    )


def _layout_map() -> str:
    """The map: the fenced block of docs/layout.md."""
    start = LAYOUT.index("```text\n")
    return LAYOUT[start : LAYOUT.index("\n```", start + 1)]


def test_every_module_is_on_the_map_and_every_mapped_module_exists():
    import re

    layout = _layout_map()
    for mod in _modules():
        assert re.search(rf"\b{re.escape(mod.rsplit('/', 1)[1])}\b", layout), (
            f"{mod} is not on the map of docs/layout.md"
        )
    named = set(re.findall(r"\b([a-z_]+\.py)\b", layout))
    present = {m.rsplit("/", 1)[1] for m in _modules()}
    assert named <= present, f"the map names modules that do not exist: {named - present}"


def test_the_environment_table_lists_exactly_the_variables_settings_reads():
    import re

    from indexer.settings import VARIABLES

    start = REFERENCE.index("## Environment")
    end = REFERENCE.find("\n## ", start + 1)
    table = REFERENCE[start : end if end > 0 else len(REFERENCE)]
    documented = set(re.findall(r"^\| `(FOODVEC_[A-Z_]+)` \|", table, re.M))
    assert documented == set(VARIABLES)


def _sources(pkg: str):
    for p in sorted((ROOT / pkg).rglob("*.py")):
        yield p.relative_to(ROOT).as_posix(), p.read_text(encoding="utf-8")


def test_only_settings_reads_the_environment():
    for name, src in [s for pkg in PACKAGES for s in _sources(pkg)]:
        if name != "indexer/settings.py":
            assert "os.environ" not in src and "getenv" not in src, name


def test_only_storage_speaks_sql():
    for name, src in [s for pkg in PACKAGES for s in _sources(pkg)]:
        if not name.startswith("indexer/storage/"):
            assert (
                "from sqlalchemy import" not in src
                or "text" not in src.split("from sqlalchemy import", 1)[1].split("\n", 1)[0]
            ), name
            assert "exec_driver_sql" not in src and "SELECT " not in src, name


def _imported(src: str, module: str) -> list[str]:
    """Every module the source of ``module`` (dotted) imports: ``import a.b``, ``from a
    import b`` (and ``a.b``, since b may be a module), relative imports resolved, and
    ``importlib.import_module`` or ``__import__`` of a literal name."""
    import ast

    package = module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            found += [base] if base else []
            found += [f"{base}.{a.name}" if base else a.name for a in node.names]
        elif isinstance(node, ast.Call) and node.args:
            func, first = node.func, node.args[0]
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(first, ast.Constant):
                found.append(str(first.value))
    return found


def _reaches_private(src: str) -> list[str]:
    """Attributes of another object that are private to it: ``x._name`` (not on self
    or cls), ``getattr(x, "_name")`` and the like."""
    import ast

    found = []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            mine = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if not mine and not node.attr.startswith("__"):
                found.append(ast.unparse(node))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", "") in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and str(node.args[1].value).startswith("_")
        ):
            found.append(ast.unparse(node))
    return found


def _is_search(module: str) -> bool:
    return module == "search" or module.startswith("search.")


def test_the_one_way_checks_catch_what_they_are_for():
    """The checks below fail on each way of breaking the rule (so they can fail)."""
    for src in (
        "import search.cli",
        "import search",
        "from search.client import Client",
        "from search import cli",
        "from .. import search",
        "import importlib\nimportlib.import_module('search.cli')",
        "__import__('search')",
    ):
        assert any(map(_is_search, _imported(src, "indexer.home"))), src
    assert not any(map(_is_search, _imported("from .searchable import x", "indexer.home")))
    for src in ("idx._store.close()", "index._mutex", "getattr(idx, '_sync')(1)", "x._gate"):
        assert _reaches_private(src), src
    assert not _reaches_private("self._store.close()\nidx.store.close()\nx.__class__")


def test_dependencies_run_one_way():
    sources = list(_sources("indexer"))
    assert len(sources) > 20
    for name, src in sources:
        module = name.removesuffix(".py").replace("/", ".")
        bad = [m for m in _imported(src, module) if _is_search(m)]
        assert not bad, f"{name} imports {bad}"
    # the front-ends use the front object's public face, never its store, its locks or
    # anything else private to another object
    for name, src in _sources("search"):
        assert not _reaches_private(src), f"{name} reaches {_reaches_private(src)}"
