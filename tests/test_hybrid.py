"""Lexical and hybrid search: Korean-aware terms, BM25 kept exact under updates, the
exact-name rule, filters on both legs, and the lexical index through every write path."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from fastapi.testclient import TestClient

from indexer import BuildOptions, FoodIndex
from indexer.korean import item_terms_many
from indexer.lexical import K1, WEIGHTS, B, LexicalIndex
from indexer.retrieval import fuse
from indexer.scores import calibrated
from indexer.terms import name_key, query_name_keys
from search.service import create_app
from tests.conftest import SAMPLE, run, sample_rows, write_csv
from tests.fakes import FakeEmbedder

# Each test runs on SQLite and on PostgreSQL.
STORES = ("sqlite", "postgres")


def ids_of(hits):
    return [h.id for h in hits]


# -- terms (more in test_korean.py) ---------------------------------------------------------
def test_spacing_does_not_change_what_a_query_finds():
    idx = LexicalIndex.build([(1, None, "김치찌개: 얼큰함"), (2, None, "닭 가슴살: 고단백")])
    assert idx.query_columns("김치 찌개") == idx.query_columns("김치찌개")
    assert idx.query_columns("닭 가슴 살") == idx.query_columns("닭가슴살")


def test_terms_of_names_particles_english_and_numbers():
    (name, text, grams, syl, facts) = item_terms_many([("우유", "우유를 Greek Yogurts 오메가3")])[0]
    assert name == ["우유"] and "우유" in text and "를" not in text + grams + syl
    assert facts == ["nutrient:omega3:high"]  # the fact field: what the text states
    assert "greek" in text and "yogurt" in text  # lower-cased, plural s dropped
    assert "3" in text and "오메가" in text
    assert item_terms_many([("무", "무")])[0][:2] == (["무"], ["무"])  # a lone syllable


def test_name_keys():
    assert name_key("닭 가슴살") == name_key("닭가슴살")
    assert name_key("Greek-Yogurt") == name_key("greek yogurt")
    assert query_name_keys("김치가") == ["김치가", "김치"]
    assert query_name_keys("오이") == ["오이"]  # too short to strip a particle from


# -- the BM25 index ----------------------------------------------------------------------
def brute_bm25(
    docs: dict[int, tuple[str | None, str]], query: str, idx: LexicalIndex
) -> dict[int, float]:
    """BM25 over the four fields, written out directly from the formula; the query's
    terms as ``idx`` segments them."""
    fields = dict(zip(docs, item_terms_many(docs.values()), strict=True))
    n_docs = len(docs)
    nf = len(WEIGHTS)
    avg = [sum(len(f[j]) for f in fields.values()) / n_docs for j in range(nf)]
    inv = {v: k for k, v in idx.vocab.items()}
    wanted = [(f, inv[col][1:]) for f, col in idx.query_columns(query)]
    out: dict[int, float] = {}
    for f, w in wanted:
        df = sum(1 for fl in fields.values() if w in fl[f])
        if not df:
            continue
        idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
        for i, fl in fields.items():
            tf = fl[f].count(w)
            if tf:
                norm = K1 * (1 - B + B * len(fl[f]) / max(avg[f], 1e-9))
                out[i] = out.get(i, 0.0) + WEIGHTS[f] * idf * tf * (K1 + 1) / (tf + norm)
    return out


def test_bm25_stays_exact_through_updates_and_compaction(monkeypatch):
    import indexer.lexical as lexical

    monkeypatch.setattr(lexical, "TAIL_FLOOR", 7)  # compact often
    rows = sample_rows()
    rng = random.Random(3)
    docs = {n: (r["name"], r["text"]) for n, r in enumerate(rows[:120])}
    idx = LexicalIndex.build((i, n, t) for i, (n, t) in docs.items())
    for step in range(60):
        removed = rng.sample(sorted(docs), 2)
        for i in removed:
            docs.pop(i)
        added = {}
        for _ in range(3):
            r = rng.choice(rows)
            added[rng.randrange(0, 400)] = (r["name"], r["text"] + f" {step}")
        docs.update(added)
        idx.update(removed, ((i, n, t) for i, (n, t) in added.items()))
    assert sorted(idx.ids().tolist()) == sorted(docs)
    for query in ["김치 찌개", "비타민 C 풍부", "칼슘이 많은 음식", "무", "12", "돈가스"]:
        ids, scores = idx.score(query)
        got = dict(zip(ids.tolist(), scores.tolist(), strict=True))
        want = brute_bm25(docs, query, idx)
        assert set(got) == set(want), query
        for i, s in want.items():
            assert got[i] == pytest.approx(s, rel=1e-4), (query, i)
    again = LexicalIndex.load_bytes(idx.to_bytes())
    ids, scores = again.score("김치 찌개")
    assert dict(zip(ids.tolist(), scores.tolist(), strict=True)) == pytest.approx(
        brute_bm25(docs, "김치 찌개", again), rel=1e-4
    )


def test_fuse_puts_exact_names_first_then_by_weighted_sum():
    ranked = fuse({1: 0.9, 2: 0.5}, {2: 1.0, 3: 0.2}, 0.5, first=[3])
    assert [i for i, _ in ranked] == [3, 2, 1]
    assert dict(ranked)[2] == pytest.approx(0.75)


# -- searching the sample -------------------------------------------------------------------
@pytest.mark.parametrize(
    "query, first",
    [
        ("김치", "k131"),
        ("김치가", "k131"),  # a particle attached
        ("우유", "k112"),
        ("김치 찌개", "k139"),  # a space inside a compound
        ("두부", "k097"),
    ],
)
def test_names_come_first_as_people_type_them(built, query, first):
    with FoodIndex(built) as idx:
        for mode in ("hybrid", "lexical"):
            assert ids_of(idx.searcher().search(query, k=5, mode=mode)[0])[0] == first, mode


def test_a_compound_finds_its_parts_and_the_parts_find_the_compound(built):
    with FoodIndex(built) as idx:
        s = idx.searcher()
        kimchi = ids_of(s.search("김치", k=10, mode="lexical")[0])
        assert kimchi[0] == "k131" and "k139" in kimchi  # 김치 first, 김치찌개 below it
        stew = ids_of(s.search("김치찌개", k=10, mode="lexical")[0])
        assert stew[0] == "k139" and "k131" in stew


def test_exact_name_wins_over_a_closer_vector(fakes, home, tmp_path):
    rows = [
        {"id": "a", "text": "사과: 식이섬유 풍부", "name": "사과"},
        # the same words as the query, but another food's name
        {"id": "b", "text": "사과 사과 사과 사과 주스: 당분 과다", "name": "사과주스"},
    ]
    path = write_csv(tmp_path / "f.csv", rows)
    with FoodIndex(home) as idx:
        idx.build([path], BuildOptions(progress=False))
        dense = ids_of(idx.searcher().search("사과", k=2, mode="dense")[0])
        hybrid = ids_of(idx.searcher().search("사과", k=2)[0])
    assert dense[0] == "b"  # the vector alone prefers the longer text
    assert hybrid[0] == "a"


def test_name_column_option_and_label_fallback(fakes, home, tmp_path):
    rows = [
        {"id": "x1", "text": "고소한 견과: 비타민 E", "food": "아몬드"},
        {"id": "x2", "text": "호두: 오메가3", "food": ""},
    ]
    path = write_csv(tmp_path / "f.csv", rows)
    assert run("build", path, "--name-column", "food", "-q").exit_code == 0
    with FoodIndex(home) as idx:
        assert ids_of(idx.searcher().search("아몬드", k=1)[0]) == ["x1"]
        assert ids_of(idx.searcher().search("호두", k=1)[0]) == ["x2"]  # the label before ":"
    res = run("build", path, "--name-column", "nope")
    assert res.exit_code == 1 and "no name column 'nope'" in res.output


def test_filters_apply_to_both_legs(built):
    dairy = {r["id"] for r in sample_rows() if r["category"] == "유제품"}
    with FoodIndex(built) as idx:
        s = idx.searcher()
        for mode in ("hybrid", "lexical"):
            hits = s.search("김치 칼슘", k=5, filters={"category": "유제품"}, mode=mode)[0]
            assert hits and {h.id for h in hits} <= dairy, mode
        # a filtered hybrid query returns k results whenever k items match
        assert len(s.search("김치", k=len(dairy), filters={"category": "유제품"})[0]) == len(dairy)
        # the exact-name rule respects the filter too
        assert "k131" not in ids_of(s.search("김치", k=3, filters={"category": "유제품"})[0])


def test_json_scores_per_mode(built):
    hybrid = json.loads(run("search", "우유", "--json", "-k", "3").output)["results"]
    lexical = json.loads(run("search", "우유", "--json", "--mode", "lexical").output)["results"]
    assert hybrid[0]["id"] == "k112" and 0 < hybrid[0]["dense"] <= 1
    # every mode's score is calibrated into [0, 1]; the components stay as they are
    # (lexical: the coverage, above 1 for an item holding the query's term more than once)
    for res in (hybrid, lexical):
        assert all(0.0 <= h["score"] <= 1.0 for h in res)
    assert lexical[0]["score"] == pytest.approx(calibrated("lexical", lexical[0]["lexical"]))
    assert run("search", "x", "--mode", "fuzzy").exit_code == 2


# -- the lexical index follows every write path ----------------------------------------------
def lexical_ids(idx, query):
    return ids_of(idx.searcher().search(query, k=10, mode="lexical")[0])


def test_every_write_path_keeps_the_lexical_index_current(built):
    assert run("add", "귀리 라떼: 베타글루칸 함유", "--id", "o1").exit_code == 0
    with FoodIndex(built) as idx:
        assert lexical_ids(idx, "귀리라떼")[0] == "o1"
    assert run("add", "현미 라떼: 구수함", "--id", "o1").exit_code == 0  # text changed
    with FoodIndex(built) as idx:
        assert "o1" not in lexical_ids(idx, "귀리")
        assert lexical_ids(idx, "현미 라떼")[0] == "o1"
    assert run("delete", "o1").exit_code == 0
    with FoodIndex(built) as idx:
        assert "o1" not in lexical_ids(idx, "현미 라떼")
        app = create_app(idx, compact_every=0)
        with TestClient(app) as c:
            r = c.post("/items", json={"items": [{"id": "h1", "text": "흑임자 죽: 고소함"}]})
            assert r.status_code == 200
            hits = c.post("/search", json={"query": "흑임자", "mode": "lexical"}).json()
            assert hits["results"][0]["id"] == "h1"
            assert c.delete("/items/h1").status_code == 200
            hits = c.post("/search", json={"query": "흑임자", "mode": "lexical"}).json()
            assert "h1" not in [h["id"] for h in hits["results"]]
        assert idx.verify() == []
    # a renamed item (same text) is found by its new name
    rows = [dict(r) for r in sample_rows()]
    rows[0]["name"] = "포파이 채소"
    path = write_csv(built / "renamed.csv", rows)
    assert run("build", path, "-q").exit_code == 0
    with FoodIndex(built) as idx:
        assert idx.searcher().search("포파이 채소", k=1)[0][0].id == rows[0]["id"]
    assert run("verify").exit_code == 0


def test_reembed_keeps_the_lexical_index(built):
    assert run("build", SAMPLE, "--reembed", "--model", "fake-other", "-q").exit_code == 0
    with FoodIndex(built, model="fake-other") as idx:
        assert lexical_ids(idx, "김치")[0] == "k131"
        assert idx.verify() == []


def test_verify_catches_a_wrong_lexical_index_and_open_rebuilds_a_lost_one(built):
    side = json.loads((built / "index" / "index.json").read_text())
    path = built / "index" / side["lexical"]
    good = path.read_bytes()
    # An index made from other texts: verify names the problem.
    with FoodIndex(built) as idx:
        other = LexicalIndex.build((i, None, "다른 음식") for i, _, _ in idx._store.named_docs())
    path.write_bytes(other.to_bytes())
    res = run("verify")
    assert res.exit_code == 1 and "lexical index" in res.output
    # A lost or unreadable file is derived data: the next open rebuilds and republishes it.
    path.write_bytes(good[:100])
    with FoodIndex(built) as idx:
        assert lexical_ids(idx, "김치")[0] == "k131"
    path.unlink(missing_ok=True)
    with FoodIndex(built) as idx:
        assert lexical_ids(idx, "김치")[0] == "k131"
    assert run("verify").exit_code == 0


def test_old_database_gets_names_from_metadata_or_label(tmp_path):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from indexer.storage import Store, make_engine
    from migrations import SCRIPT_LOCATION

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "0002")
    with make_engine(url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO items(ext_id, text, content_hash, metadata) VALUES "
                "('a', '김치 찌개: 짬', 'h1', '{}'), ('b', 'x', 'h2', '{\"name\": \"닭 갈비\"}')"
            )
        )
    store = Store.open(url)
    assert store.ids_by_name_keys(["김치찌개", "닭갈비"]) == {"김치찌개": [1], "닭갈비": [2]}


class _RowsRead(np.ndarray):
    """An array that counts the rows each fancy-indexed read asks for."""

    reads: list[int]

    def __getitem__(self, key):
        if isinstance(key, tuple) and isinstance(key[0], np.ndarray):
            self.reads.append(len(key[0]))
        return np.asarray(self).__getitem__(key)


def test_lexical_scorer_reads_only_the_query_terms_postings():
    """Not a timing test: the scorer reads the lengths of the rows in the query terms'
    postings, never all 3,000 documents (a full scan would read every row)."""
    docs = [(i, None, f"food {i % 97} 김치 {i % 13}") for i in range(3000)]
    idx = LexicalIndex.build(docs)
    lens = idx.main_lens.view(_RowsRead)
    lens.reads = []
    idx.main_lens = lens
    ids, scores = idx.score("zzz-not-there")
    assert len(ids) == 0 and lens.reads == []
    ids, _ = idx.score("5")
    want = {i for i in range(3000) if i % 97 == 5 or i % 13 == 5}
    assert set(ids.tolist()) == want
    # Each matching document is read once a field it matches in: at most 4 fields.
    assert len(want) <= sum(lens.reads) <= 4 * len(want) < 3000


def test_hybrid_with_a_fake_model_over_http_defaults_to_hybrid(home):
    idx = FoodIndex(home, embedder=FakeEmbedder(64))
    idx.build([SAMPLE], BuildOptions(progress=False))
    with TestClient(create_app(idx, compact_every=0)) as c:
        body = c.post("/search", json={"query": "김치가", "k": 3}).json()
        assert body["results"][0]["id"] == "k131" and "lexical" in body["results"][0]
        dense = c.post("/search", json={"query": "김치가", "k": 3, "mode": "dense"}).json()
        assert "lexical" not in dense["results"][0]
        bad = c.post("/search", json={"query": "김치", "mode": "nope"})
        assert bad.status_code == 422
    idx.close()
