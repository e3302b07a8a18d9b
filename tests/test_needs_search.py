"""Needs answered the right way round, end to end: a search over the demo corpus (fake
embedder, so only the needs ranking and the keyword leg decide) never ranks a food
described as harmful for the need asked about, in any mode that reads needs, and says
why each hit matched."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexer import FoodIndex
from indexer.knowledge import load_knowledge
from indexer.ranking import judge, judge_many, plan
from indexer.understand import lexicon, parse_query, read_facts
from tests.conftest import run, sample_rows

STORES = ("sqlite", "postgres")

HARMS_BP = "혈압 상승 위험"


@pytest.mark.parametrize("mode", ["hybrid", "lexical"])
@pytest.mark.parametrize(
    "query", ["혈압에 좋은 음식", "혈압 관리", "고혈압에 좋은 반찬", "good for blood pressure"]
)
def test_good_for_blood_pressure_never_returns_salty_food(built, query, mode):
    with FoodIndex(built) as idx:
        hits = idx.searcher().search(query, k=10, mode=mode)[0]
    assert len(hits) == 10
    assert not [h.text for h in hits if HARMS_BP in h.text or "나트륨 과다" in h.text]
    # the first hits serve the need: potassium, low sodium or the need itself
    assert any(w in hits[0].text for w in ("칼륨", "혈압", "마그네슘", "저염"))
    assert all(h.why for h in hits[:3]) and all(0.0 <= h.score <= 1.0 for h in hits)


def test_the_harmful_side_is_asked_for_by_name(built):
    with FoodIndex(built) as idx:
        hits = idx.searcher().search("혈압에 안 좋은 음식", k=5)[0]
    assert all(HARMS_BP in h.text or "나트륨" in h.text for h in hits)
    assert all(h.health is not None and h.health < 0.5 for h in hits)


def test_plain_ranking_without_the_needs_ranking_does_return_salty_food(built):
    """The test above can fail: with the needs ranking off, the keyword 혈압 finds the
    salty foods that mention it."""
    with FoodIndex(built) as idx:
        hits = idx.searcher(needs=False).search("혈압에 좋은 음식", k=10, mode="lexical")[0]
    assert any(HARMS_BP in h.text for h in hits)


def test_names_are_ranked_as_before(built):
    with FoodIndex(built) as idx:
        s = idx.searcher()
        for name in ("김치", "두부", "우유"):
            assert s.search(name, k=3)[0] == idx.searcher(needs=False).search(name, k=3)[0]


def test_json_and_explain_show_the_reading_and_why(built):
    res = run("search", "혈압에 좋은 음식", "-k", "3", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["parse"]["targets"] == [
        {"kind": "need", "id": "blood_pressure", "direction": "help", "words": "혈압"}
    ]
    assert all(h["why"] and 0 <= h["health"] <= 1 for h in doc["results"])
    out = run("search", "혈압에 좋은 음식", "-k", "3", "--explain").output
    assert "read as: blood_pressure (혈압): foods good for it" in out and "why:" in out


def test_the_vectorised_judgement_equals_the_judgement_of_the_facts(built):
    """``judge_many`` (over the lexical index's fact field) and ``judge`` (over the
    facts read from each text) agree on every sample food for many queries."""
    kb = load_knowledge()
    lex = lexicon()
    rows = sample_rows()
    queries = ["혈압에 좋은 음식", "혈압에 안 좋은 음식", "뼈에 좋은 음식", "당이 적은 음료"]
    queries += ["카페인 없는 차", "다이어트에 좋은 음식", "간에 나쁜 것", "칼슘 많은 음식"]
    with FoodIndex(built) as idx:
        ext = {r.ext_id: i for i, r in idx.items(range(1, len(rows) + 1)).items()}
        for q in queries:
            parse = parse_query(q)
            p = plan(parse, kb)
            _, holders = idx.derived.lexical_read([], p.tokens)
            ids = np.array([ext[r["id"]] for r in rows])
            support, against = judge_many(p, ids, holders)
            for r, s, a in zip(rows, support, against, strict=True):
                j = judge(parse, read_facts(r["text"], lex), kb)
                assert (j.against, round(j.support, 6)) == (bool(a), round(float(s), 6)), (q, r)


def _head_on(monkeypatch, dim=64):
    """A health head for the fake model: a fixed random direction."""
    import indexer.health
    import indexer.retrieval
    from indexer.health import HealthHead

    rng = np.random.default_rng(3)
    head = HealthHead(rng.normal(size=dim) * 4, 0.1, heldout_accuracy=0.9, train_rows=82)
    got = lambda spec: head if spec == "fake" else None  # noqa: E731
    monkeypatch.setattr(indexer.retrieval, "head_for", got)
    monkeypatch.setattr(indexer.health, "head_for", got)
    return head


def test_every_hit_carries_the_health_heads_score(built, monkeypatch):
    head = _head_on(monkeypatch)
    with FoodIndex(built) as idx:
        hits = idx.searcher().search("김치", k=5, mode="dense")[0]
        ids, vecs = idx.vectors()
        rows = idx.items(ids.tolist())
        by_ext = {rows[int(i)].ext_id: v for i, v in zip(ids, vecs, strict=True)}
        assert idx.stats()["health_head"] == {
            "heldout_accuracy": 0.9,
            "foods_accuracy": None,
            "train_rows": 82,
        }
    assert hits and all(h.health is not None for h in hits)
    for h in hits:
        assert h.health == pytest.approx(float(head.score(by_ext[h.id])), abs=1e-4)


def test_judged_hits_blend_the_head_with_stated_facts(built, monkeypatch):
    import indexer.retrieval

    with FoodIndex(built) as idx:
        plain = {h.id: h.health for h in idx.searcher().search("혈압에 좋은 음식", k=5)[0]}
        _head_on(monkeypatch)
        monkeypatch.setattr(indexer.retrieval, "HEAD_SHARE", 1.0)
        only_head = idx.searcher().search("혈압에 좋은 음식", k=50)[0]
        monkeypatch.setattr(indexer.retrieval, "HEAD_SHARE", 0.5)
        blended = {h.id: h.health for h in idx.searcher().search("혈압에 좋은 음식", k=50)[0]}
    heads = {h.id: h.health for h in only_head}
    common = set(plain) & set(heads) & set(blended)
    assert common
    for i in common:
        assert blended[i] == pytest.approx(0.5 * heads[i] + 0.5 * plain[i], abs=2e-4)


def test_a_model_without_a_head_gives_no_health_to_plain_hits(built):
    with FoodIndex(built) as idx:
        hits = idx.searcher().search("김치", k=3, mode="dense")[0]
        assert idx.stats()["health_head"] is None
    assert all(h.health is None for h in hits)
