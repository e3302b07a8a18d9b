"""The quantized index (``ivf-sq8``): IVF over 8-bit codes whose candidates are ranked
again by the stored float vectors, on its own and in a home."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

import indexer.ann
from indexer import BuildOptions, FoodIndex
from indexer.ann import (
    AUTO_FLAT_MAX,
    AUTO_IVF_MAX,
    RERANK_FACTOR,
    SQ8_NPROBE,
    AnnIndex,
    DamagedIndex,
    choose_kind,
    ivf_nlist,
    rerank,
)
from tests.conftest import SAMPLE, run, sample_rows

DIM = 48


def clustered(n: int, seed: int = 0, centres: int = 60) -> np.ndarray:
    """``n`` unit vectors around ``centres`` random directions."""
    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((centres, DIM)).astype(np.float32)
    vecs = middle[rng.integers(0, centres, n)] + 0.6 * rng.standard_normal((n, DIM))
    vecs = vecs.astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def reader(ids: np.ndarray, vecs: np.ndarray):
    """An ``exact`` reader over these stored vectors that records what it was asked."""
    rows = {int(i): v for i, v in zip(ids, vecs, strict=True)}
    asked: list[int] = []

    def read(want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked.extend(want.tolist())
        held = [int(i) for i in want if int(i) in rows]
        got = np.array([rows[i] for i in held], np.float32).reshape(len(held), DIM)
        return np.array(held, np.int64), got

    return read, asked


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, vectors) of 6,000 indexed items and 300 held-out query vectors."""
    vecs = clustered(6300)
    return np.arange(10, 6010, dtype=np.int64), vecs[:6000], vecs[6000:]


def exact_top(queries: np.ndarray, ids: np.ndarray, vecs: np.ndarray, k: int):
    scores = queries @ vecs.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


def test_auto_picks_the_quantized_index_above_its_size():
    assert choose_kind("auto", AUTO_FLAT_MAX) == "flat"
    assert choose_kind("auto", AUTO_IVF_MAX) == "ivf"
    assert choose_kind("auto", AUTO_IVF_MAX + 1) == "ivf-sq8"
    assert choose_kind("ivf-sq8", 10) == "ivf-sq8"


def test_reranked_search_matches_exact_search(corpus):
    ids, vecs, queries = corpus
    ann = AnnIndex.build(
        "ivf-sq8", DIM, lambda: [(ids[:3000], vecs[:3000]), (ids[3000:], vecs[3000:])], 6000
    )
    assert ann.kind == "ivf-sq8" and ann.quantized and ann.count == 6000
    nlist = ivf_nlist(6000)
    assert ann.params == {"nlist": nlist, "nprobe": min(nlist, SQ8_NPROBE), "rerank": RERANK_FACTOR}
    assert ann.index.nprobe < ann.index.nlist  # some lists are not probed
    assert ann.index.code_size == DIM  # a byte a dimension
    read, asked = reader(ids, vecs)
    scores, got = ann.search(queries, 10, exact=read)
    want_scores, want = exact_top(queries, ids, vecs, 10)
    same = [set(a) == set(b) for a, b in zip(got.tolist(), want.tolist(), strict=True)]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want, strict=True)])
    assert np.mean(same) >= 0.97 and recall >= 0.97, (np.mean(same), recall)
    # the scores are the exact inner products, best first
    rows = {int(i): v for i, v in zip(ids, vecs, strict=True)}
    again = np.array([[rows[int(i)] @ q for i in row] for q, row in zip(queries, got, strict=True)])
    np.testing.assert_allclose(scores, again, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-7)
    # RERANK_FACTOR candidates a result were read, each once
    assert len(asked) <= RERANK_FACTOR * 10 * len(queries) and len(set(asked)) == len(asked)
    # without the reader: the codes' approximate scores, which are not exact
    approx, _ = ann.search(queries, 10)
    assert np.abs(approx - want_scores).max() > 1e-4


def test_rerank_pads_and_leaves_out_what_has_no_stored_vector():
    ids = np.array([1, 2, 3], np.int64)
    vecs = np.eye(3, DIM, dtype=np.float32)
    read, _ = reader(ids, vecs)
    q = np.zeros((1, DIM), np.float32)
    q[0, :3] = [0.2, 0.9, 0.5]
    # 7 has no stored vector (deleted in between); -1 is FAISS's "none"
    scores, got = rerank(q, np.array([[7, 1, 3, 2, -1]]), 4, read)
    assert got.tolist() == [[2, 3, 1, -1]]
    np.testing.assert_allclose(scores[0, :3], [0.9, 0.5, 0.2], atol=1e-6)
    assert scores[0, 3] == np.finfo(np.float32).min
    scores, got = rerank(q, np.array([[-1, -1]]), 10, read)
    assert got.tolist() == [[-1, -1]]
    assert rerank(q, np.zeros((1, 0), np.int64), 10, read)[1].shape == (1, 0)


def test_save_load_remove_and_add(tmp_path, corpus):
    ids, vecs, queries = corpus
    read, _ = reader(ids, vecs)
    built = AnnIndex.build("ivf-sq8", DIM, lambda: [(ids, vecs)], len(ids))
    built.save(tmp_path, {"generation": 3, "model": "m", "requested": "ivf-sq8"})
    side = json.loads((tmp_path / "index.json").read_text())
    assert side["kind"] == "ivf-sq8" and side["params"]["rerank"] == RERANK_FACTOR
    loaded, meta = AnnIndex.load(tmp_path)
    assert loaded.kind == "ivf-sq8" and loaded.source is not None  # mapped from the file
    assert meta["generation"] == 3 and loaded.params == built.params
    want = built.search(queries[:20], 10, exact=read)
    for a, b in zip(loaded.search(queries[:20], 10, exact=read), want, strict=True):
        np.testing.assert_array_equal(a, b)
    # the index holds each vector's code, decoded by reconstruct: held_form says what
    np.testing.assert_array_equal(loaded.reconstruct_many(ids[:50]), loaded.held_form(vecs[:50]))
    assert np.abs(loaded.held_form(vecs[:50]) - vecs[:50]).max() > 1e-4

    gone = want[1][:, 0]  # every query's best match
    assert loaded.remove(gone) == len(np.unique(gone))
    assert loaded.source is None  # copied into memory by its first change
    assert not np.isin(gone, loaded.ids()).any()
    assert not np.isin(gone, loaded.search(queries[:20], 10, exact=read)[1]).any()
    new = clustered(1, seed=9)
    read_new, _ = reader(np.append(ids, 99_999), np.vstack([vecs, new]))
    loaded.add(np.array([99_999]), new)
    scores, got = loaded.search(new, 3, exact=read_new)
    assert got[0, 0] == 99_999 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert loaded.count == len(ids) - len(np.unique(gone)) + 1
    # a filter: the selector picks the candidates, the stored vectors rank them
    allowed = ids[::7]
    scores, got = loaded.search(queries[:20], 10, allowed=allowed, exact=read_new)
    assert np.isin(got, allowed).all()


@pytest.mark.hostile
def test_a_sidecar_naming_another_kind_or_a_residual_code_is_damage(tmp_path, corpus):
    ids, vecs, _ = corpus
    AnnIndex.build("ivf", DIM, lambda: [(ids, vecs)], len(ids)).save(
        tmp_path, {"generation": 1, "model": "m"}
    )
    side = json.loads((tmp_path / "index.json").read_text())
    side["kind"] = "ivf-sq8"
    (tmp_path / "index.json").write_text(json.dumps(side))
    with pytest.raises(DamagedIndex, match="is a ivf index; its sidecar says ivf-sq8"):
        AnnIndex.load(tmp_path)
    # 8-bit codes of residuals are not what this kind holds (verify could not check them)
    residual = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(DIM), DIM, 4, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    assert indexer.ann._kind_of(residual) is None


def test_a_home_built_with_the_quantized_index_searches_exactly(fakes, home):
    rows = sample_rows()
    fake = fakes["fake"]
    assert run("build", SAMPLE, "-q", "--index", "ivf-sq8").exit_code == 0
    with FoodIndex(home) as idx:
        assert idx.stats()["index"]["type"] == "ivf-sq8"
        assert idx.sync().quantized
        query = "칼슘 뼈 건강"
        hits = idx.searcher().search(query, k=10, mode="dense")[0]
        vecs = fake.encode([r["text"] for r in rows])
        exact = vecs @ fake.encode([query])[0]
        want = np.sort(exact)[::-1][:10]
        assert [h.dense for h in hits] == pytest.approx(want.tolist(), abs=1e-5)
        # the vectors a search takes from the index are the stored ones, not the codes
        item = idx.item(hits[0].id)
        got_ids, got = idx.derived.index_vectors([item.id])
        np.testing.assert_array_equal(got, idx.vectors([item.id])[1])
        # a filter: exact over its subset (a narrow one), then ranked by stored vectors
        dairy = np.array([r["category"] == "유제품" for r in rows])
        exact = vecs @ fake.encode(["우유"])[0]
        want = np.sort(exact[dairy])[::-1][:3]
        hits = idx.search("우유", k=3, where={"category": "유제품"}, mode="dense")[0]
        assert all(h.metadata["category"] == "유제품" for h in hits)
        assert [h.dense for h in hits] == pytest.approx(want.tolist(), abs=1e-5)
        idx.delete(["k001", "k002"])
        idx.upsert([{"id": "n1", "text": "새 음식: 비타민 풍부"}])
        assert idx.verify() == []
        first = idx.searcher().search("새 음식: 비타민 풍부", k=5, mode="dense")[0][0]
        assert first.id == "n1" and first.dense == pytest.approx(1.0, abs=1e-5)
        assert not {"k001", "k002"} & {h.id for h in idx.search("x", k=300, mode="dense")[0]}
    assert run("verify").exit_code == 0


def test_verify_finds_a_quantized_index_that_holds_other_vectors(fakes, home):
    with FoodIndex(home) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False), index_kind="ivf-sq8")
        ann = idx.sync()
        item = idx.item("k010")
        ann.remove(np.array([item.id]))
        ann.add(np.array([item.id]), np.ones((1, ann.dim), np.float32) / 8)
        problems = idx.derived._vector_problems(ann, idx.derived._ann_meta["model"])
    assert len(problems) == 1 and "1 index vectors differ" in problems[0], problems


def test_auto_turns_quantized_above_its_size(fakes, home, monkeypatch):
    monkeypatch.setattr(indexer.ann, "AUTO_FLAT_MAX", 50)
    monkeypatch.setattr(indexer.ann, "AUTO_IVF_MAX", 100)
    with FoodIndex(home) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
        assert idx.stats()["index"]["type"] == "ivf-sq8"
        assert idx.stats()["index"]["requested"] == "auto"
        assert idx.verify() == []
