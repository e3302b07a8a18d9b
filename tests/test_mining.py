from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sentence_transformers import util
from sqlalchemy import text

from indexer import BuildOptions, FoodIndex
from indexer.mining import Pairs, clusters, mine_exact, mine_ivf, run_mining_job
from search.cli import cli
from tests.conftest import SAMPLE, write_csv

# Each test runs on SQLite and on PostgreSQL.
STORES = ("sqlite", "postgres")


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


def clustered_vectors(n_groups=150, per=4, dim=48, noise=0.08, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, dim))
    vecs = np.repeat(centres, per, axis=0) + noise * rng.normal(size=(n_groups * per, dim))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs.astype(np.float32)


def reference(vecs, top_k, threshold):
    ref = util.paraphrase_mining_embeddings(torch.from_numpy(vecs), top_k=top_k, max_pairs=10**9)
    return {(i, j): s for s, i, j in ref if s >= threshold}


@pytest.mark.parametrize("top_k,threshold", [(10, 0.9), (3, 0.5), (1, 0.0)])
def test_exact_equals_sentence_transformers(top_k, threshold):
    vecs = clustered_vectors()
    got = mine_exact(vecs, top_k=top_k, threshold=threshold)
    want = reference(vecs, top_k, threshold)
    pairs = {(int(a), int(b)): float(s) for a, b, s in zip(got.a, got.b, got.score, strict=True)}
    assert set(pairs) == set(want)
    for key, s in want.items():
        assert pairs[key] == pytest.approx(s, abs=1e-5)
    assert list(got.score) == sorted(got.score, reverse=True)
    assert len(want) > 50  # the case is not trivial


def test_exact_chunking_does_not_change_the_answer(monkeypatch):
    import indexer.mining as mining

    vecs = clustered_vectors(seed=3)
    whole = mine_exact(vecs, 5, 0.8)
    monkeypatch.setattr(mining, "EXACT_STEP", 16)
    chunked = mine_exact(vecs, 5, 0.8)
    as_dict = [
        {(int(a), int(b)): float(v) for a, b, v in zip(p.a, p.b, p.score, strict=True)}
        for p in (whole, chunked)
    ]
    assert set(as_dict[0]) == set(as_dict[1])
    for key, v in as_dict[0].items():
        assert as_dict[1][key] == pytest.approx(v, abs=1e-5)


def test_approximate_recall_on_clustered_vectors():
    vecs = clustered_vectors(n_groups=600, seed=1)
    exact = mine_exact(vecs, 10, 0.9)
    approx = mine_ivf(vecs, 10, 0.9)
    want = set(zip(exact.a.tolist(), exact.b.tolist(), strict=True))
    got = set(zip(approx.a.tolist(), approx.b.tolist(), strict=True))
    assert len(want & got) / len(want) >= 0.95
    # every pair it returns is real: its true cosine reaches the threshold
    true = (vecs[approx.a] * vecs[approx.b]).sum(axis=1)
    assert len(got) and np.all(true >= 0.9 - 1e-5)
    assert np.allclose(true, approx.score, atol=1e-5)


def test_clusters_are_connected_components():
    p = Pairs(np.array([0, 1, 5, 7]), np.array([1, 2, 6, 9]), np.array([0.99, 0.95, 0.93, 0.9]))
    assert clusters(p) == [[0, 1, 2], [5, 6], [7, 9]]


@pytest.fixture
def built(fakes, home, tmp_path):
    rows = [
        {"id": f"d{i}", "text": t, "cat": c}
        for i, (t, c) in enumerate(
            [
                ("두부: 식물성 단백질과 칼슘 풍부", "a"),
                ("두부: 식물성 단백질과 칼슘이 풍부", "a"),
                ("두부 : 식물성 단백질과 칼슘 풍부함", "b"),
                ("콜라: 설탕과 카페인 함유", "a"),
                ("콜라: 설탕과 카페인 함유함", "b"),
                ("브로콜리: 비타민 C 풍부", "a"),
            ]
        )
    ]
    extra = write_csv(tmp_path / "dups.csv", rows)
    with FoodIndex(home) as idx:
        idx.build([SAMPLE, extra], BuildOptions(progress=False))
    return home


def test_cli_mine_json_jobs_and_of(built):
    res = run("mine", "--threshold", "0.8", "--json")
    assert res.exit_code == 0, res.output
    pairs = [json.loads(x) for x in res.stdout.splitlines()]
    assert pairs and set(pairs[0]) == {"id_a", "id_b", "text_a", "text_b", "score"}
    found = {frozenset((p["id_a"], p["id_b"])) for p in pairs}
    assert frozenset(("d0", "d1")) in found and frozenset(("d3", "d4")) in found
    assert [p["score"] for p in pairs] == sorted((p["score"] for p in pairs), reverse=True)
    with FoodIndex(built) as idx:
        vecs = idx.vectors()[1]
    assert len(pairs) == len(reference(vecs, 10, 0.8))
    res = run("mine", "--of", "d0", "--json")
    of = [json.loads(x) for x in res.stdout.splitlines()]
    assert of and all("d0" in (p["id_a"], p["id_b"]) for p in of)
    jobs = [json.loads(x) for x in run("jobs", "--json").stdout.splitlines()]
    assert jobs[0]["status"] == "done" and jobs[0]["pair_count"] == len(pairs)
    assert jobs[0]["mode"] == "exact" and jobs[0]["generation"] == 1
    assert jobs[0]["params"]["threshold"] == 0.8
    assert "job 1" in run("jobs").output


def test_cli_mine_outputs_clusters_cap_and_filter(built, tmp_path):
    for ext in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"pairs.{ext}"
        res = run("mine", "--threshold", "0.8", "-q", "--output", out)
        assert res.exit_code == 0, res.output
        assert out.exists() and out.stat().st_size > 0
    with open(tmp_path / "pairs.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and list(rows[0]) == ["id_a", "id_b", "text_a", "text_b", "score"]
    res = run("mine", "--threshold", "0.8", "-q", "--clusters")
    assert "clusters (connected components" in res.output
    res = run("mine", "--threshold", "0.8", "-q", "--max-pairs", "1")
    assert "more pairs left out by --max-pairs" in res.output
    res = run("mine", "--threshold", "-1", "--filter", "cat=b", "--json")
    ids = {
        i for x in res.stdout.splitlines() for i in (json.loads(x)["id_a"], json.loads(x)["id_b"])
    }
    assert ids == {"d2", "d4"}


def test_killed_job_is_shown_interrupted(built):
    with FoodIndex(built) as idx:
        res = run_mining_job(idx, threshold=0.9)
        with idx._store.engine.connect() as conn, conn.begin():
            conn.execute(
                text("UPDATE jobs SET status = 'running', pid = 2147480000 WHERE id = :j"),
                {"j": res.job},
            )
    jobs = [json.loads(x) for x in run("jobs", "--json").stdout.splitlines()]
    assert jobs[0]["status"] == "interrupted"
    assert run("mine", "--of", "d0").exit_code == 1  # no finished job to read


def test_mine_bad_usage_and_empty(fakes, home):
    assert run("mine", "--threshold", "2").exit_code == 2
    res = run("mine")
    assert res.exit_code == 1 and "empty" in res.output


def test_mine_defaults_to_the_models_calibrated_threshold(fakes, home, monkeypatch, tmp_path):
    import json as _json

    from click.testing import CliRunner

    from indexer import BuildOptions, FoodIndex
    from search.cli import cli
    from tests.conftest import SAMPLE

    with FoodIndex(home) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
        assert idx.mining_threshold() == 0.9  # no calibration for this model
    folder = tmp_path / "fake"
    folder.mkdir()
    (folder / "foodvec_model.json").write_text(_json.dumps({"mine_threshold": 0.42}))
    monkeypatch.setattr(FoodIndex, "model_spec", lambda self: str(folder))
    with FoodIndex(home) as idx:
        assert idx.mining_threshold() == 0.42 and idx.stats()["mine_threshold"] == 0.42
    res = CliRunner().invoke(cli, ["mine", "--json", "-q"])
    assert res.exit_code == 0, res.output
    pairs = [_json.loads(x) for x in res.output.splitlines()]
    assert pairs and min(p["score"] for p in pairs) >= 0.42
    assert any(p["score"] < 0.9 for p in pairs)


def test_no_pair_above_the_threshold_gives_no_pairs():
    vecs = np.eye(4, dtype=np.float32)  # orthogonal: every cosine is 0
    for mined in (mine_exact(vecs, 3, 0.5), mine_ivf(vecs, 3, 0.5, nlist=1, nprobe=1)):
        assert len(mined) == 0
