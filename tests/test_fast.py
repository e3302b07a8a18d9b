"""The ONNX encoder against sentence-transformers (the reference)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from indexer import load_embedder
from indexer.evaluate import DATA_DIR, load_labelled
from tests.conftest import ROOT, SAMPLE, sample_rows

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


def test_query_path_does_not_import_torch(tmp_path):
    home = tmp_path / "h"
    env = {**os.environ, "FOODVEC_HOME": str(home), "FOODVEC_MODEL": "base"}
    rows = sample_rows()[:30]
    f = tmp_path / "few.csv"
    with open(f, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
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
        "cli.main(['search', '두부', '--json'], standalone_mode=False)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'sentence_transformers' not in sys.modules\n"
        "print('no torch')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("no torch")
    assert json.loads(out.stdout.splitlines()[0])["results"]
    assert SAMPLE.exists()
