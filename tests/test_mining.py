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
from indexer.mining import (
    Pairs,
    clusters,
    group_pairs,
    match_kind,
    mine_exact,
    mine_ivf,
)
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


def _pairs(edges: dict[tuple[int, int], float]) -> Pairs:
    """Hand-built mined pairs, best first."""
    best = sorted(edges.items(), key=lambda e: -e[1])
    return Pairs(
        np.array([a for (a, _), _ in best]),
        np.array([b for (_, b), _ in best]),
        np.array([s for _, s in best], np.float32),
    )


def _clique(items: list[int], score: float) -> dict[tuple[int, int], float]:
    return {(a, b): score for i, a in enumerate(items) for b in items[i + 1 :]}


def test_two_groups_joined_by_one_borderline_pair_are_two_clusters():
    edges = {**_clique([0, 1, 2, 3], 0.97), **_clique([4, 5, 6, 7], 0.96)}
    edges[(1, 3)] = 0.95  # each group's least similar pair
    edges[(5, 6)] = 0.93
    edges[(3, 4)] = 0.90  # the borderline pair that joins them
    found = clusters(_pairs(edges), floor=0.9)
    assert [c.members for c in found] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [c.least for c in found] == [(1, 3, pytest.approx(0.95)), (5, 6, pytest.approx(0.93))]
    # the pair is still a pair; only the clusters keep the groups apart
    assert (3, 4) in set(zip(_pairs(edges).a.tolist(), _pairs(edges).b.tolist(), strict=True))


def test_a_chain_is_not_one_cluster():
    # a~b, b~c, c~d mined, a~d (and a~c, b~d) far apart: without vectors a pair not
    # mined counts as far
    chain = _pairs({(0, 1): 0.99, (1, 2): 0.95, (2, 3): 0.92})
    found = clusters(chain, floor=0.9)
    assert not any({0, 3} <= set(c.members) for c in found)
    assert [c.members for c in found] == [[0, 1], [2, 3]]
    # with the vectors: points on a circle 15 degrees apart, cos 0.966 to the next one
    angles = np.radians([0, 15, 30, 45])
    vecs = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    mined = mine_exact(vecs, top_k=3, threshold=0.95)
    assert len(mined) == 3  # only the neighbours: the chain
    found = clusters(mined, 0.95, vecs)
    assert [c.members for c in found] == [[0, 1], [2, 3]]


def test_vectors_fill_the_pairs_top_k_left_out():
    # six points on an arc, 15 degrees end to end (every cosine >= 0.966), gaps that
    # widen: with top_k=1 only the path 0-1-2-3-4-5 is mined
    angles = np.radians([0, 1, 3, 6, 10, 15])
    vecs = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    mined = mine_exact(vecs, top_k=1, threshold=0.95)
    assert sorted(zip(mined.a.tolist(), mined.b.tolist(), strict=True)) == [
        (i, i + 1) for i in range(5)
    ]
    assert max(len(c) for c in clusters(mined, 0.95)) == 2  # mined pairs alone: split
    (whole,) = clusters(mined, 0.95, vecs)
    assert whole.members == [0, 1, 2, 3, 4, 5]
    assert whole.least[:2] == (0, 5) and whole.least[2] == pytest.approx(np.cos(angles[5]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_cluster_is_within_the_threshold_and_reports_its_least_similar_pair(seed):
    # groups with a wide spread, so that groups touch and pairs chain across them
    vecs = clustered_vectors(n_groups=40, per=6, dim=8, noise=0.35, seed=seed)
    mined = mine_exact(vecs, top_k=10, threshold=0.8)
    found = clusters(mined, 0.8, vecs)
    assert found and len(found[0]) > 2
    chained = max(len(c) for c in _connected_components(mined))
    assert chained > len(found[0])  # the case would chain under single linkage
    seen: set[int] = set()
    for c in found:
        assert not seen & set(c.members)  # each item in one cluster at most
        seen |= set(c.members)
        sims = vecs[c.members] @ vecs[c.members].T
        i, j = np.unravel_index(np.argmin(sims), sims.shape)
        assert sims[i, j] >= 0.8 - 1e-5
        a, b, score = c.least
        assert score == pytest.approx(sims[i, j], abs=1e-5)
        assert float(vecs[a] @ vecs[b]) == pytest.approx(sims[i, j], abs=1e-5)
        assert {a, b} <= set(c.members) and a < b
    assert [len(c) for c in found] == sorted((len(c) for c in found), reverse=True)


def _connected_components(p: Pairs) -> list[set[int]]:
    groups: list[set[int]] = []
    for a, b in zip(p.a.tolist(), p.b.tolist(), strict=True):
        touching = [g for g in groups if a in g or b in g]
        merged = {a, b}.union(*touching)
        groups = [g for g in groups if g not in touching] + [merged]
    return groups


@pytest.mark.parametrize(
    "a,b,kind",
    [
        # the same entry twice: the same name and text up to spacing and punctuation
        (
            ("두부", "두부: 식물성 단백질과 칼슘 풍부"),
            ("두부", "두부 : 식물성 단백질과 칼슘 풍부"),
            "same name",
        ),
        # the name from the name column, in other words
        (("닭 가슴살", "저지방 고단백 살코기"), ("닭가슴살", "단백질이 많은 살코기"), "reworded"),
        # no name column: the leading label is the name
        (
            (None, "두부: 식물성 단백질과 칼슘 풍부"),
            (None, "두부: 칼슘이 많은 콩 가공품"),
            "reworded",
        ),
        # names that differ but the same leading label
        (("연두부", "두부: 부드러운 콩 가공품"), ("순두부", "두부: 무른 콩 가공품"), "reworded"),
        # two foods described alike
        (
            ("콜라", "콜라: 설탕과 카페인 함유"),
            ("사이다", "사이다: 설탕과 탄산 함유"),
            "same profile",
        ),
        (
            (None, "설탕과 카페인 함유 탄산음료"),
            (None, "설탕과 카페인이 든 탄산음료"),
            "same profile",
        ),
        # no name at all: the text is the name
        (
            (None, "설탕과 카페인 함유 탄산음료"),
            (None, "설탕과  카페인 함유, 탄산음료"),
            "same name",
        ),
    ],
)
def test_match_kind(a, b, kind):
    assert match_kind(*a, *b) == kind
    assert match_kind(*b, *a) == kind


def test_pairs_are_grouped_by_the_item_they_duplicate():
    pairs = [
        {"id_a": "x", "id_b": "y", "score": 0.99},
        {"id_a": "b", "id_b": "c", "score": 0.98},
        {"id_a": "a", "id_b": "b", "score": 0.97},
        {"id_a": "b", "id_b": "d", "score": 0.96},
        {"id_a": "c", "id_b": "d", "score": 0.95},
    ]
    groups = group_pairs(pairs)
    assert [g for g, _ in groups] == ["b", "c", "x"]  # b has 3 pairs, c 2 (one left), x 1
    assert [len(ps) for _, ps in groups] == [3, 1, 1]
    assert [p["score"] for p in groups[0][1]] == [0.98, 0.97, 0.96]
    assert sorted(p["score"] for _, ps in groups for p in ps) == sorted(p["score"] for p in pairs)


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
                ("콜라 : 설탕과  카페인 함유", "a"),
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
    assert pairs and set(pairs[0]) == {"id_a", "id_b", "text_a", "text_b", "score", "kind"}
    found = {frozenset((p["id_a"], p["id_b"])): p["kind"] for p in pairs}
    assert found[frozenset(("d0", "d1"))] == "reworded"
    assert found[frozenset(("d3", "d4"))] == "reworded"
    assert found[frozenset(("d3", "d6"))] == "same name"  # only the spacing differs
    # the sample's own: 삼겹살 ~ 라드, two foods described alike
    assert found[frozenset(("k088", "k209"))] == "same profile"
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
    assert rows and list(rows[0]) == ["id_a", "id_b", "text_a", "text_b", "score", "kind"]
    res = run("mine", "--threshold", "0.8", "-q", "--clusters")
    assert "clusters (every two members at cosine >= 0.8), the largest has" in res.output
    assert "least similar: " in res.output
    assert "reworded" in res.output and "same name" in res.output
    res = run("mine", "--threshold", "0.8", "-q", "--max-pairs", "1")
    assert "more pairs left out by --max-pairs" in res.output
    res = run("mine", "--threshold", "-1", "--filter", "cat=b", "--json")
    ids = {
        i for x in res.stdout.splitlines() for i in (json.loads(x)["id_a"], json.loads(x)["id_b"])
    }
    assert ids == {"d2", "d4"}


def _clusters_and_pairs(*args):
    res = run("mine", "--threshold", "0.8", "-q", "--json", "--clusters", *args)
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    pairs = {frozenset((p["id_a"], p["id_b"])) for p in lines if "cluster" not in p}
    return [x for x in lines if "cluster" in x], pairs


def test_cli_mine_clusters_json_gives_size_and_least_similar_pair(built):
    with FoodIndex(built) as idx:
        ids, vecs = idx.vectors()
        items = idx.items(ids.tolist())
    row = {items[i].ext_id: n for n, i in enumerate(ids.tolist())}
    unmined = {}
    for top_k in (10, 1):
        groups, pairs = _clusters_and_pairs("--top-k", top_k)
        assert groups and [g["cluster"] for g in groups] == list(range(1, len(groups) + 1))
        assert frozenset(("d0", "d1")) in pairs
        assert any({"d0", "d1", "d2"} <= {m["id"] for m in g["members"]} for g in groups)
        for g in groups:
            members = [m["id"] for m in g["members"]]
            assert g["size"] == len(members) >= 2
            sims = vecs[[row[m] for m in members]] @ vecs[[row[m] for m in members]].T
            least = g["least_similar"]
            assert least["score"] == pytest.approx(sims.min(), abs=1e-5)
            assert sims.min() >= 0.8 - 1e-5
            a, b = row[least["id_a"]], row[least["id_b"]]
            assert float(vecs[a] @ vecs[b]) == pytest.approx(sims.min(), abs=1e-5)
            assert {least["id_a"], least["id_b"]} <= set(members)
        unmined[top_k] = [
            (a["id"], b["id"])
            for g in groups
            for i, a in enumerate(g["members"])
            for b in g["members"][i + 1 :]
            if frozenset((a["id"], b["id"])) not in pairs
        ]
    # top-1 mines few pairs: the clusters hold pairs it left out, read from the vectors
    assert unmined[1]
    # an existing job, read again, gives the same clusters
    again = run("mine", "--job", "1", "--clusters", "--json")
    assert [json.loads(x) for x in again.stdout.splitlines()] == _clusters_and_pairs()[0]


def test_http_pairs_say_their_kind(built):
    from fastapi.testclient import TestClient

    from search.service import create_app

    with FoodIndex(built) as idx:
        job = idx.mine(threshold=0.8).job
        with TestClient(create_app(idx, compact_every=0)) as client:
            page = client.get(f"/jobs/{job}/pairs", params={"limit": 1000}).json()
    kinds = {frozenset((p["id_a"], p["id_b"])): p["kind"] for p in page["pairs"]}
    assert kinds[frozenset(("d3", "d6"))] == "same name"
    assert kinds[frozenset(("d0", "d1"))] == "reworded"
    assert set(kinds.values()) <= {"same name", "reworded", "same profile"}


def test_killed_job_is_shown_interrupted(built):
    with FoodIndex(built) as idx:
        res = idx.mine(threshold=0.9)
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
    from indexer.home_model import HomeModel
    from search.cli import cli
    from tests.conftest import SAMPLE

    with FoodIndex(home) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
        assert idx.mining_threshold() == 0.9  # no calibration for this model
    folder = tmp_path / "fake"
    folder.mkdir()
    (folder / "foodvec_model.json").write_text(_json.dumps({"mine_threshold": 0.42}))
    monkeypatch.setattr(HomeModel, "spec", lambda self: str(folder))
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
