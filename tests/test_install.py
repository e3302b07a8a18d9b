"""An installed wheel works away from the source tree: its data, page and migrations
travel with it, and `foodvec train` runs from another folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The project built as a wheel (from a copy of the tree, so the checkout is left
    clean) and installed without dependencies into a folder of its own."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("indexer", "search", "migrations"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    dist = work / "dist"
    pip = [sys.executable, "-m", "pip"]
    wheel_cmd = ["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)]
    subprocess.run(pip + wheel_cmd, check=True, cwd=work, capture_output=True)
    wheel = next(dist.glob("foodvec-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "indexer/data/train.csv",
        "indexer/data/lookup/queries.jsonl",
        "search/service/page.html",
        "migrations/script.py.mako",
    ):
        assert needed in names, f"the wheel lacks {needed}"
    target = work / "site"
    install = ["install", "-q", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(pip + install, check=True, capture_output=True)
    return target


def _run(target: Path, cwd: Path, *args: str, timeout: int = 600):
    env = {**os.environ, "PYTHONPATH": str(target), "FOODVEC_HOME": str(cwd / "home")}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_installed_package_finds_its_data_away_from_the_source(installed, tmp_path):
    code = (
        "import indexer, search.service.routes_search as r\n"
        "from indexer.settings import DATA_DIR\n"
        "from indexer.train import SEARCH_SOURCES, TrainConfig\n"
        "from indexer.pairs import read_foods\n"
        "from indexer.quality import load_queries\n"
        "print(indexer.__file__)\n"
        "print(DATA_DIR)\n"
        "print(len(read_foods(SEARCH_SOURCES[0])), len(load_queries()))\n"
        "print(TrainConfig().data.is_file(), '<form' in r.PAGE)\n"
    )
    res = _run(installed, tmp_path, "-c", code)
    assert res.returncode == 0, res.stderr
    module, data, counts, flags = res.stdout.splitlines()
    assert module.startswith(str(installed)) and data.startswith(str(installed))
    foods, queries = map(int, counts.split())
    assert foods > 100 and queries == 496
    assert flags == "True True"


@pytest.mark.model
def test_train_runs_from_the_installed_wheel_in_another_folder(installed, tmp_path):
    out = tmp_path / "model"
    res = _run(
        installed,
        tmp_path,
        "-m",
        "search.cli",
        "train",
        "--recipe",
        "card",
        "--epochs",
        "1",
        "--no-eval",
        "-q",
        "--output",
        str(out),
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert (out / "modules.json").is_file() and (out / "foodvec_model.json").is_file()
    assert len(list((out / "onnx").glob("*/encoder.onnx"))) == 1  # the graph ships with it
    # and the model it made indexes and finds the packaged sample corpus
    sample = installed / "indexer" / "data" / "sample_foods.csv"
    cli = ("-m", "search.cli")
    build = _run(installed, tmp_path, *cli, "build", str(sample), "-q", "--model", str(out))
    assert build.returncode == 0, build.stderr[-2000:]
    found = _run(installed, tmp_path, *cli, "search", "김치", "-k", "1")
    assert found.returncode == 0 and "김치" in found.stdout.split("\n", 1)[1]
