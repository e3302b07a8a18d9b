"""Every command has help and appears in the README."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from search.cli import cli
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_command_has_help_and_is_documented(name):
    command = cli.commands[name]
    assert command.help and len(command.help.strip()) > 20, name
    assert f"foodvec {name}" in README, f"README does not show `foodvec {name}`"
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


def _layout_section() -> str:
    start = README.index("## Layout")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else len(README)]


def test_every_module_is_on_the_readme_map_and_every_mapped_module_exists():
    import re

    layout = _layout_section()
    for mod in _modules():
        assert re.search(rf"\b{re.escape(mod.rsplit('/', 1)[1])}\b", layout), (
            f"{mod} is not on the README's Layout map"
        )
    named = set(re.findall(r"\b([a-z_]+\.py)\b", layout)) - {"test_docs.py"}
    present = {m.rsplit("/", 1)[1] for m in _modules()}
    assert named <= present, f"the map names modules that do not exist: {named - present}"


def test_the_environment_table_lists_exactly_the_variables_settings_reads():
    import re

    from indexer.settings import VARIABLES

    start = README.index("### Environment")
    table = README[start : README.index("\n## ", start)]
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
            assert "from sqlalchemy import" not in src or "text" not in src.split(
                "from sqlalchemy import", 1
            )[1].split("\n", 1)[0], name
            assert "exec_driver_sql" not in src and "SELECT " not in src, name


def test_dependencies_run_one_way():
    import ast

    for name, src in _sources("indexer"):
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("search"), f"{name} imports {node.module}"
    for name, src in _sources("search"):
        # the front-ends use the front object, never its store or its locks
        for private in ("._store", "._mutex", "._file_lock", "._sync("):
            assert private not in src, f"{name} reaches {private}"
