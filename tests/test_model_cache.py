"""The trained default model is cached per user: `foodvec train` with its defaults
trains once per recipe, data, base model and training code, and copies the model into
every other home (docs/model.md, "The per-user cache"). Training itself is faked here:
it writes a small model folder and counts its calls."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from indexer import model_cache
from indexer.settings import DATA_DIR
from tests.conftest import run


@pytest.fixture
def trainings(monkeypatch, tmp_path):
    """A per-test user cache, and a fake training that writes a model folder (its
    weights tell the runs apart) and records each configuration it was given."""
    import indexer.train as tr

    monkeypatch.setenv("FOODVEC_CACHE", str(tmp_path / "cache"))
    calls = []

    def fake_train(cfg, progress=True):
        calls.append(cfg)
        out = Path(cfg.output)
        (out / "1_Pooling").mkdir(parents=True, exist_ok=True)
        (out / "modules.json").write_text("[]")
        (out / "config.json").write_text("{}")
        (out / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
        weights = f"run {len(calls)} epochs {cfg.epochs}".encode()
        (out / "model.safetensors").write_bytes(weights * 100)
        (out / "foodvec_model.json").write_text('{"mine_threshold": 0.85}')
        (out / "onnx" / "f00d").mkdir(parents=True, exist_ok=True)
        (out / "onnx" / "f00d" / "encoder.onnx").write_bytes(b"graph" * 50)
        info = {"seconds": 1.5, "steps": 3, "train_loss": 0.25, "config": {"output": str(out)}}
        (out / "foodvec_training.json").write_text(json.dumps(info))
        return info

    def fake_card(path, info, figures):
        (Path(path) / "README.md").write_text(f"card {json.dumps(figures)}")

    monkeypatch.setattr(tr, "train", fake_train)
    monkeypatch.setattr(tr, "evaluate_pair", lambda out, base="base": FIGURES)
    monkeypatch.setattr(tr, "write_model_card", fake_card)
    return calls


FIGURES = {"base": {"heldout_1nn_accuracy": 0.78}, "tuned": {"heldout_1nn_accuracy": 0.83}}


def _train_in(monkeypatch, home: Path, *args: str):
    monkeypatch.setenv("FOODVEC_HOME", str(home))
    res = run("train", *args)
    assert res.exit_code == 0, res.output
    return res


def _entries(tmp_path: Path) -> list[Path]:
    root = tmp_path / "cache" / "models"
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_miss_trains_and_stores_and_a_hit_copies_without_training(
    trainings, monkeypatch, tmp_path
):
    first = _train_in(monkeypatch, tmp_path / "a")
    assert len(trainings) == 1
    (entry,) = _entries(tmp_path)
    assert f"cached it for other homes: {entry}" in first.output
    record = json.loads((entry / "entry.json").read_text())
    assert record["parts"]["recipe"] == "foodvec" and record["evaluation"] == FIGURES
    trained = tmp_path / "a" / "models" / "default"
    assert _files(entry / "model") == _files(trained)

    # A second home (a second clone's `make demo`): copied, not trained.
    second = _train_in(monkeypatch, tmp_path / "b")
    assert len(trainings) == 1, "the cached model was trained again"
    out = tmp_path / "b" / "models" / "default"
    assert second.output.count("\n") == 1 and "copied the trained foodvec model from the cache" in (
        second.output
    )
    copied = _files(out)
    assert copied.pop("foodvec_training.json") != _files(trained)["foodvec_training.json"]
    assert copied == {k: v for k, v in _files(trained).items() if k != "foodvec_training.json"}
    own = json.loads((out / "foodvec_training.json").read_text())
    assert own["config"]["output"] == str(out) and own["from_cache"] == str(entry)
    # a copy, not links: the home's files are its own
    for rel in ("model.safetensors", "onnx/f00d/encoder.onnx"):
        assert (out / rel).stat().st_ino != (entry / "model" / rel).stat().st_ino
    assert _files(entry / "model") == _files(trained)  # the copy's record left the cache alone

    as_json = json.loads(_train_in(monkeypatch, tmp_path / "c", "--json").stdout)
    assert len(trainings) == 1
    assert as_json["cache"] == str(entry) and as_json["evaluation"] == FIGURES
    assert as_json["steps"] == 3 and as_json["output"] == str(tmp_path / "c/models/default")

    # --no-cache trains, over the copied model, and leaves the whole entry as it was
    _train_in(monkeypatch, tmp_path / "b", "--no-cache")
    assert len(trainings) == 2
    assert b"run 2" in (out / "model.safetensors").read_bytes()
    assert _entries(tmp_path) == [entry] and _files(entry / "model") == _files(trained)


def test_options_that_change_the_training_neither_use_nor_fill_the_cache(
    trainings, monkeypatch, tmp_path
):
    _train_in(monkeypatch, tmp_path / "a")
    (entry,) = _entries(tmp_path)
    for args in (
        ["--epochs", "1"],
        ["--seed", "7"],
        ["--recipe", "card"],
        ["--no-eval"],
        ["--output", str(tmp_path / "elsewhere")],
        ["--data", str(DATA_DIR / "train.csv")],
    ):
        before = len(trainings)
        _train_in(monkeypatch, tmp_path / "b", *args)
        assert len(trainings) == before + 1, args
    assert _entries(tmp_path) == [entry]


def test_a_changed_recipe_setting_misses(trainings, monkeypatch, tmp_path):
    from indexer.train import RECIPES

    _train_in(monkeypatch, tmp_path / "a")
    monkeypatch.setitem(RECIPES["foodvec"], "epochs", RECIPES["foodvec"]["epochs"] + 1)
    _train_in(monkeypatch, tmp_path / "b")
    assert len(trainings) == 2 and trainings[1].epochs == trainings[0].epochs + 1
    assert len(_entries(tmp_path)) == 2
    _train_in(monkeypatch, tmp_path / "c")  # the changed recipe's own entry now hits
    assert len(trainings) == 2


def test_changed_training_data_misses_and_prose_does_not(trainings, monkeypatch, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(model_cache, "DATA_DIR", data)
    _train_in(monkeypatch, tmp_path / "a")
    (data / "README.md").write_text("other prose", encoding="utf-8")
    _train_in(monkeypatch, tmp_path / "b")
    assert len(trainings) == 1, "a change to the data folder's README is no new data"
    with open(data / "sample_foods.csv", "a", encoding="utf-8") as fh:
        fh.write("x999,새 음식: 칼슘 풍부,1\n")
    _train_in(monkeypatch, tmp_path / "c")
    assert len(trainings) == 2 and len(_entries(tmp_path)) == 2


def test_the_key_is_the_same_in_another_clone_and_changes_with_each_part(monkeypatch, tmp_path):
    from indexer.train import TrainConfig

    monkeypatch.setenv("FOODVEC_CACHE", str(tmp_path / "cache"))
    keys = {}
    for clone in ("one", "two"):
        data = tmp_path / clone / "data"
        shutil.copytree(DATA_DIR, data, ignore=shutil.ignore_patterns("__pycache__"))
        monkeypatch.setattr(model_cache, "DATA_DIR", data)
        cfg = TrainConfig.for_recipe(
            "foodvec", data=data / "train.csv", output=tmp_path / clone / "model"
        )
        keys[clone] = model_cache.entry_for(cfg)
    assert keys["one"].key == keys["two"].key  # paths count by content, not location
    base = keys["two"]
    assert base.path == tmp_path / "cache" / "models" / base.key

    def key(**overrides):
        cfg = TrainConfig.for_recipe("foodvec", data=data / "train.csv", **overrides)
        return model_cache.entry_for(cfg).key

    assert key() == base.key
    assert key(lr=1e-4) != base.key
    assert key(health="none") != base.key  # a setting no option of the CLI sets
    with pytest.MonkeyPatch.context() as m:
        m.setattr(model_cache, "code_hash", lambda: "other code")
        assert key() != base.key
    with pytest.MonkeyPatch.context() as m:
        m.setattr(model_cache, "base_hash", lambda base: "another base model")
        assert key() != base.key
    with open(data / "train.csv", "a", encoding="utf-8") as fh:
        fh.write("새 문구,1\n")
    assert key() != base.key


def _cut_short(model: Path) -> None:
    f = model / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-10])


def _other_weights(model: Path) -> None:
    f = model / "model.safetensors"
    f.write_bytes(bytes(reversed(f.read_bytes())))  # same size, other bytes


DAMAGE = {
    "weights missing": lambda m: (m / "model.safetensors").unlink(),
    "graph missing": lambda m: shutil.rmtree(m / "onnx"),
    "weights cut short": _cut_short,
    "other weights, same size": _other_weights,
    "no record": lambda m: (m.parent / "entry.json").unlink(),
    "record unreadable": lambda m: (m.parent / "entry.json").write_text("{"),
}


@pytest.mark.hostile
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_entry_is_ignored_and_retrained(trainings, monkeypatch, tmp_path, damage):
    _train_in(monkeypatch, tmp_path / "a")
    (entry,) = _entries(tmp_path)
    DAMAGE[damage](entry / "model")
    res = _train_in(monkeypatch, tmp_path / "b")
    assert len(trainings) == 2, "a damaged entry was copied"
    assert f"the cached model {entry} is damaged" in res.output
    out = tmp_path / "b" / "models" / "default"
    assert b"run 2" in (out / "model.safetensors").read_bytes()
    # the retrained model replaced the damaged entry, which is whole again and hits
    assert _entries(tmp_path) == [entry]
    assert _files(entry / "model") == _files(out)
    _train_in(monkeypatch, tmp_path / "c")
    assert len(trainings) == 2


def test_a_cache_that_cannot_be_written_does_not_fail_the_training(
    trainings, monkeypatch, tmp_path
):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "models").write_text("a file where the folder would be")
    res = _train_in(monkeypatch, tmp_path / "a")
    assert len(trainings) == 1 and "could not cache the model" in res.output
    assert (tmp_path / "a" / "models" / "default" / "model.safetensors").is_file()
