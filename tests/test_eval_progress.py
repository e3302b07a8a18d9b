"""`foodvec eval-model` says what it is doing: a line per stage on stderr (seconds
counting up on a terminal), nothing under --json or -q. The figures themselves are
faked here (the real ones take about 90 s; tests/test_model.py runs the real model)."""

from __future__ import annotations

import io
import json
import time

import pytest
from click.testing import CliRunner

import indexer.quality
from indexer.errors import FoodvecError
from search.cli import cli
from search.cli.model import Stages

FIGURES = {"lookup_dense_ndcg10": 0.5, "mine_threshold": 0.9}


@pytest.fixture
def slow_report(monkeypatch):
    asked = []

    def report(spec, split="test"):
        asked.append(spec)
        time.sleep(0.05)
        return dict(FIGURES)

    monkeypatch.setattr(indexer.quality, "model_report", report)
    return asked


def _run(*args):
    return CliRunner().invoke(cli, ["eval-model", "--model", "my-model", *args])


def test_each_stage_is_a_line_on_stderr(slow_report):
    res = _run()
    assert res.exit_code == 0, res.output
    assert slow_report == ["base", "my-model"]
    lines = res.stderr.splitlines()
    what = "lookup, health, English, [UNK] and mining figures"
    assert lines[0] == f"[1/2] base model (base): {what} ..."
    assert lines[1].startswith(f"[1/2] base model (base): {what}: done in ")
    assert lines[2] == f"[2/2] model (my-model): {what} ..."
    assert lines[3].startswith(f"[2/2] model (my-model): {what}: done in ")
    assert float(lines[1].rsplit(" ", 2)[1]) >= 0.05
    assert len(lines) == 4
    assert res.stdout.splitlines()[0] == "model: my-model"  # the figures stay on stdout


@pytest.mark.parametrize("flag", ["--json", "-q"])
def test_json_and_quiet_print_no_progress(slow_report, flag):
    res = _run(flag)
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    if flag == "--json":
        assert json.loads(res.stdout)["tuned"] == FIGURES


def test_a_failed_stage_says_so(monkeypatch):
    def report(spec, split="test"):
        raise FoodvecError("no model at my-model")

    monkeypatch.setattr(indexer.quality, "model_report", report)
    res = _run()
    assert res.exit_code == 1
    lines = res.stderr.splitlines()
    assert lines[1].startswith("[1/2] base model (base): ") and " failed after " in lines[1]
    assert lines[-1] == "Error: no model at my-model"


def test_on_a_terminal_the_seconds_count_up(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    monkeypatch.setattr("sys.stderr", err)
    stages = Stages(1)
    stages.TICK_SECONDS = 0.02
    with stages.stage("work"):
        time.sleep(0.2)
    text = err.getvalue()
    assert text.startswith("[1/1] work ...")
    assert "\r[1/1] work ... 0 s" in text  # rewritten in place while it runs
    assert text.endswith("\n") and text.rsplit("\r", 1)[1].startswith("[1/1] work: done in ")
