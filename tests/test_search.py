from __future__ import annotations

import json
import zlib

import faiss
import numpy as np
import pytest

from indexer import BuildOptions, FoodIndex
from indexer.errors import BadRowError
from indexer.scores import calibrated
from tests.conftest import SAMPLE, run, sample_rows

# Each test runs on SQLite and on PostgreSQL.
STORES = ("sqlite", "postgres")


def brute_force(fake, rows, query, k, keep=lambda r: True):
    rows = [r for r in rows if keep(r)]
    vecs = fake.encode([r["text"] for r in rows])
    q = fake.encode([query])[0]
    scores = vecs @ q
    order = np.argsort(-scores, kind="stable")[:k]
    return [(rows[i]["id"], float(scores[i])) for i in order]


QUERIES = ["비타민이 풍부한 과일", "나트륨 과다 가공식품", "칼슘 뼈 건강", "설탕 음료"]


def test_search_equals_exact_search(built, fakes):
    rows = sample_rows()
    with FoodIndex(built) as idx:
        results = idx.searcher().search(QUERIES, k=10, mode="dense")
    for q, hits in zip(QUERIES, results, strict=True):
        want = brute_force(fakes["fake"], rows, q, 10)
        # ``dense`` is the cosine; ``score`` its calibrated value, in the same order
        assert [h.dense for h in hits] == pytest.approx([s for _, s in want], abs=1e-5)
        assert [h.score for h in hits] == [calibrated("dense", h.dense) for h in hits]
        # ids equal up to the order of exact ties
        assert {h.id for h in hits if h.dense > want[-1][1] + 1e-6} <= {i for i, _ in want}


def test_several_queries_are_encoded_in_one_batch(built, fakes):
    with FoodIndex(built) as idx:
        s = idx.searcher()
        s.search(QUERIES[:1])  # warm (loads nothing for the fake, but keep it honest)
        before = fakes["fake"].calls
        s.search(QUERIES, k=3)
        assert fakes["fake"].calls == before + 1


def test_filter_returns_k_whenever_k_match(built, fakes):
    rows = sample_rows()
    dairy = [r for r in rows if r["category"] == "유제품"]
    with FoodIndex(built) as idx:
        hits = idx.searcher().search(
            "탄산음료 설탕", k=5, filters={"category": "유제품"}, mode="dense"
        )[0]
        assert len(hits) == 5
        assert all(h.metadata["category"] == "유제품" for h in hits)
        want = brute_force(
            fakes["fake"], rows, "탄산음료 설탕", 5, keep=lambda r: r["category"] == "유제품"
        )
        assert [h.dense for h in hits] == pytest.approx([s for _, s in want], abs=1e-5)
        all_dairy = idx.searcher().search("x", k=100, filters={"category": "유제품"})[0]
        assert len(all_dairy) == len(dairy)
        two = idx.searcher().search("x", k=100, filters={"category": "유제품", "healthy": "0"})[0]
        assert {h.id for h in two} == {r["id"] for r in dairy if r["healthy"] == "0"}
        assert idx.searcher().search("x", filters={"category": "없음"})[0] == []


def test_min_score(built):
    with FoodIndex(built) as idx:
        hits = idx.searcher().search(
            "두부: 식물성 단백질과 칼슘 풍부, 뼈 건강 지원",
            k=10,
            min_score=calibrated("dense", 0.99),
            mode="dense",
        )[0]
    assert [h.id for h in hits] == ["k097"]


def test_search_json_contract(built):
    res = run("search", "두부", "김치", "-k", "2", "--json")
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.splitlines()]
    assert [x["query"] for x in lines] == ["두부", "김치"]
    hit = lines[0]["results"][0]
    # hybrid (the default) adds each leg's score beside the fused one
    assert set(hit) == {"id", "text", "score", "metadata", "dense", "lexical"}
    assert set(hit["metadata"]) == {"name", "category", "healthy"}
    assert hit["id"] == "k097" and lines[1]["results"][0]["id"] == "k131"
    dense = json.loads(run("search", "두부", "--mode", "dense", "--json").output)
    assert set(dense["results"][0]) == {"id", "text", "score", "metadata", "dense"}
    assert 0.0 <= dense["results"][0]["score"] <= 1.0


def test_human_output_and_stats(built):
    res = run("search", "두부", "-k", "1")
    assert res.exit_code == 0
    # the query is echoed on the first line; the hit is on the second
    assert "k097" in res.output.splitlines()[1] and "두부:" in res.output.splitlines()[1]
    s = json.loads(run("stats", "--json").output)
    assert s["items"] == len(sample_rows())
    assert s["index"]["type"] == "flat" and s["generation"] == 1
    assert len(s["model"]) == 64
    assert "items:" in run("stats").output


def test_add_is_visible_and_verify_passes(built):
    res = run("add", "귀리 라떼: 베타글루칸 함유, 저당", "--id", "o1", "--meta", "category=음료")
    assert res.exit_code == 0 and "added" in res.output
    res = run("search", "귀리 라떼: 베타글루칸 함유, 저당", "-k", "1", "--json")
    assert json.loads(res.output)["results"][0]["id"] == "o1"
    res = run("add", "귀리 라떼: 베타글루칸 함유, 무가당", "--id", "o1")
    assert "updated" in res.output
    assert run("delete", "o1", "k001").exit_code == 0
    assert json.loads(run("stats", "--json").output)["items"] == len(sample_rows()) - 1
    assert run("verify").exit_code == 0


def test_another_process_write_is_seen(built):
    with FoodIndex(built) as reader, FoodIndex(built) as writer:
        s = reader.searcher()
        assert s.search("x")[0]
        writer.upsert([{"id": "w1", "text": "새로운 음식: 단백질 풍부"}])
        writer.delete(["k002"])
        hits = s.search("새로운 음식: 단백질 풍부", k=300)[0]
        assert hits[0].id == "w1"
        assert "k002" not in {h.id for h in hits}


def test_stale_index_catches_up_from_change_log(built):
    # A writer that committed but died before publishing its index.
    with FoodIndex(built) as idx:
        with idx._store.write() as tx:
            tx.delete_ext_ids(["k001"])
    side = json.loads((built / "index" / "index.json").read_text())
    assert side["generation"] == 1  # the published index is behind the database (2)
    with FoodIndex(built) as idx:  # the next process to open the home repairs it
        assert "k001" not in {h.id for h in idx.searcher().search("x", k=300)[0]}
    side = json.loads((built / "index" / "index.json").read_text())
    assert side["generation"] == 2 and side["count"] == len(sample_rows()) - 1
    assert run("verify").exit_code == 0


@pytest.mark.parametrize("kind", ["hnsw", "ivf", "ivf-sq8"])
def test_approximate_kinds_update_and_verify(fakes, home, kind):
    with FoodIndex(home) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False), index_kind=kind)
        assert idx.stats()["index"]["type"] == kind
        idx.delete(["k001", "k002"])
        idx.upsert([{"id": "n1", "text": "새 음식: 비타민 풍부"}])
        assert idx.verify() == []
        hits = idx.searcher().search("새 음식: 비타민 풍부", k=5)[0]
        assert hits[0].id == "n1"
        ids = {h.id for h in idx.searcher().search("x", k=300)[0]}
        assert "k001" not in ids
        narrow = idx.searcher().search("우유", k=3, filters={"category": "유제품"})[0]
        assert len(narrow) == 3 and all(h.metadata["category"] == "유제품" for h in narrow)
    assert run("verify").exit_code == 0


def test_verify_detects_a_damaged_index(built):
    with FoodIndex(built) as idx:
        ann = idx.sync()
        victim = idx.item("k010").id
        ann.remove(np.array([victim]))
        side = json.loads((idx.layout.index_dir / "index.json").read_text())
        faiss.write_index(ann.index, str(idx.layout.index_dir / side["file"]))
        # the sidecar agrees with the damaged file (count and checksum), so nothing
        # looks wrong on open: as if foodvec itself had saved a wrong index
        side["count"] -= 1
        side["crc32"] = zlib.crc32((idx.layout.index_dir / side["file"]).read_bytes())
        (idx.layout.index_dir / "index.json").write_text(json.dumps(side))
    res = run("verify")
    assert res.exit_code == 1
    assert "missing from the index" in res.output and str(victim) in res.output


def test_verify_detects_changed_vectors(built):
    with FoodIndex(built) as idx:
        ann = idx.sync()
        item = idx.item("k010")
        ann.remove(np.array([item.id]))
        ann.add(np.array([item.id]), np.ones((1, ann.dim), np.float32) / 8)
        side = json.loads((idx.layout.index_dir / "index.json").read_text())
        path = idx.layout.index_dir / side["file"]
        faiss.write_index(ann.index, str(path))
        side["crc32"] = zlib.crc32(path.read_bytes())  # saved so, not damaged on disk
        (idx.layout.index_dir / "index.json").write_text(json.dumps(side))
    res = run("verify")
    assert res.exit_code == 1 and "vectors differ" in res.output


def test_empty_index_search(fakes, home):
    assert run("init").exit_code == 0  # reading commands never create a home
    res = run("search", "두부", "--json")
    assert res.exit_code == 0
    assert json.loads(res.output)["results"] == []


def test_filter_keys_with_quotes_dots_and_control_characters(built):
    with FoodIndex(built) as idx:
        idx.upsert(
            [
                {
                    "id": "q1",
                    "text": "특이한 키",
                    "metadata": {'a"b.c': "x", "\x01": "0", "a\\b": "y"},
                }
            ]
        )
        s = idx.searcher()
        assert [h.id for h in s.search("x", k=5, filters={'a"b.c': "x"})[0]] == ["q1"]
        assert [h.id for h in s.search("x", k=5, filters={"a\\b": "y"})[0]] == ["q1"]
        assert [h.id for h in s.search("x", k=5, filters={"\x01": "0"})[0]] == ["q1"]
        # SQLite's JSON functions stop a key at NUL, so such a key is refused on the way in
        with pytest.raises(BadRowError, match="NUL"):
            idx.upsert([{"id": "q2", "text": "널 키", "metadata": {"\x00": "0"}}])
        assert s.search("x", k=5, filters={"$.": "x"})[0] == []
