"""The ONNX encoder against sentence-transformers (the reference)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from indexer import load_embedder
from indexer.evaluate import load_labelled
from indexer.settings import DATA_DIR
from tests.conftest import ROOT, sample_rows, write_csv

pytestmark = pytest.mark.model


def corpus() -> list[str]:
    texts = [r["text"] for r in sample_rows()]
    texts += load_labelled(DATA_DIR / "train.csv")[0] + load_labelled(DATA_DIR / "heldout.csv")[0]
    data = json.loads((DATA_DIR / "english_food_queries.json").read_text(encoding="utf-8"))
    texts += list(data["corpus"].values()) + [q["query"] for q in data["queries"]]
    texts += ["a", "가", "Crème brûlée with 비타민", "x " * 400]  # tiny, mixed, truncated
    return texts


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    cache = tmp_path_factory.mktemp("models")
    ref = load_embedder("base", encoder="torch")
    fast = load_embedder("base", encoder="onnx", cache_dir=cache)
    return ref, fast


def test_onnx_agrees_with_sentence_transformers(encoders):
    ref, fast = encoders
    texts = corpus()
    assert len(texts) >= 300
    a = ref.encode(texts)
    b = fast.encode(texts)
    assert fast.fingerprint == ref.fingerprint and b.shape == a.shape
    cos = (a * b).sum(axis=1)
    assert cos.min() >= 0.9999, (cos.min(), texts[int(cos.argmin())])
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)


def test_batch_invariance_bit_for_bit(encoders):
    _, fast = encoders
    texts = corpus()[:120]
    together = fast.encode(texts)
    alone = np.vstack([fast.encode([t]) for t in texts])
    shuffled_order = np.random.default_rng(0).permutation(len(texts))
    shuffled = fast.encode([texts[i] for i in shuffled_order])
    assert np.array_equal(together, alone)
    assert np.array_equal(together[shuffled_order], shuffled)


def test_sessions_and_batch_limits_do_not_change_a_bit(encoders, tmp_path):
    """One session or one per core, small or large batches: the same bits."""
    _, fast = encoders
    texts = corpus()
    parallel = fast.encode(texts)
    lengths = [len(e.ids) for e in fast.tokenizer.encode_batch(texts)]
    assert len(fast._sessions) == min(fast.workers, len(fast.batches(lengths)))
    from indexer.onnx_encoder import OnnxEmbedder

    graph_dir = fast.graph.parent.parent
    for workers, rows, tokens in ((1, 64, 512), (3, 5, 64), (2, 256, 4096)):
        other = OnnxEmbedder(
            fast.path,
            fast.fingerprint,
            graph_dir,
            batch_size=rows,
            workers=workers,
            tokens_per_batch=tokens,
        )
        assert np.array_equal(other.encode(texts), parallel), (workers, rows, tokens)


def test_batches_are_exact_length_groups_within_limits(encoders):
    _, fast = encoders
    lengths = [7] * 5 + [40] * 30 + [3]
    batches = fast.batches(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len({lengths[i] for i in b}) == 1
        n = lengths[b[0]]
        assert len(b) <= max(2, min(fast.batch_size, fast.tokens_per_batch // n))
    assert [i for b in batches for i in b][-1] == 35  # longest first, the shortest last


def test_a_failing_worker_fails_the_encode(encoders, monkeypatch):
    _, fast = encoders
    from indexer.onnx_encoder import OnnxEmbedder

    enc = OnnxEmbedder(fast.path, fast.fingerprint, fast.graph.parent.parent, workers=2)
    calls = []
    real_session = enc._session

    class Broken:
        def __init__(self, real):
            self.real = real

        def run(self, *a, **kw):
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("session failed")
            return self.real.run(*a, **kw)

    monkeypatch.setattr(enc, "_session", lambda threads=1: Broken(real_session(threads)))
    with pytest.raises(RuntimeError, match="session failed"):
        enc.encode(corpus())
    assert len(calls) < len(enc.batches([len(e.ids) for e in enc.tokenizer.encode_batch(corpus())]))


def test_graph_has_no_mask_input_and_replaces_old_exports(tmp_path):
    from indexer.embedder import base_model_path, model_fingerprint
    from indexer.onnx_encoder import GRAPH, OnnxEmbedder

    fp = model_fingerprint(base_model_path())
    stale = tmp_path / fp / "model.onnx"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an export from an earlier version")
    enc = OnnxEmbedder(base_model_path(), fp, tmp_path, workers=1)
    assert not stale.exists() and (tmp_path / fp / GRAPH).exists()
    assert [i.name for i in enc._single.get_inputs()] == ["input_ids", "token_type_ids"]
    assert enc.encode(["두부", "가"]).shape == (2, 384)


def test_bert_forward_agrees_with_the_models_own_forward(encoders, tmp_path):
    """The written-out BERT pass and the generic export give the same vectors."""
    import onnx

    from indexer.onnx_encoder import GRAPH, OnnxEmbedder, export

    _, fast = encoders
    assert {n.op_type for n in onnx.load(str(fast.graph)).graph.node} >= {"Gemm"}
    export(fast.path, tmp_path / fast.fingerprint, generic=True)
    generic = OnnxEmbedder(fast.path, fast.fingerprint, tmp_path)
    assert "Gemm" not in {
        n.op_type for n in onnx.load(str(tmp_path / fast.fingerprint / GRAPH)).graph.node
    }
    texts = corpus()
    cos = (fast.encode(texts) * generic.encode(texts)).sum(axis=1)
    assert cos.min() >= 0.99999, cos.min()


def test_query_path_does_not_import_torch(tmp_path):
    home = tmp_path / "h"
    env = {**os.environ, "FOODVEC_HOME": str(home), "FOODVEC_MODEL": "base"}
    f = write_csv(tmp_path / "few.csv", sample_rows()[:30])
    built = subprocess.run(
        [sys.executable, "-m", "search.cli", "build", str(f), "-q"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    code = (
        "import sys\n"
        "from search.cli import cli\n"
        "cli.main(['search', '시금치', '--json'], standalone_mode=False)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'sentence_transformers' not in sys.modules\n"
        "print('no torch')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("no torch")
    assert json.loads(out.stdout.splitlines()[0])["results"][0]["id"] == "k001"  # 시금치


def test_a_new_home_with_a_model_used_before_builds_without_torch(tmp_path):
    """The graph is kept once per model (per-user cache), not once per home: a second
    home's first build neither exports a graph nor imports torch."""
    env = {**os.environ, "FOODVEC_MODEL": "base", "FOODVEC_CACHE": str(tmp_path / "cache")}
    f = write_csv(tmp_path / "few.csv", sample_rows()[:20])
    code = (
        "import sys\n"
        "from search.cli import cli\n"
        f"cli.main(['build', {str(f)!r}, '-q'], standalone_mode=False)\n"
        "print('torch' in sys.modules)\n"
    )
    seen = []
    for home in ("a", "b"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, "FOODVEC_HOME": str(tmp_path / home)},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        seen.append(out.stdout.strip().splitlines()[-1])
    assert seen == ["True", "False"]  # the first home exported the graph; the second did not
    assert len(list((tmp_path / "cache" / "onnx").glob("*/encoder.onnx"))) == 1
