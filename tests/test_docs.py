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
