"""The filter language: parsing, its SQL against a plain-Python reading of the same
rules, typed CSV metadata, and filters inside search on the CLI and over HTTP."""

from __future__ import annotations

import json
import operator
import random

import numpy as np
import pytest
from fastapi.testclient import TestClient

from indexer import BuildOptions, FoodIndex
from indexer.filters import FilterError, parse, parse_short
from search.service import create_app
from tests.conftest import run, write_csv
from tests.fakes import FakeEmbedder

# Each test runs on SQLite and on PostgreSQL.
STORES = ("sqlite", "postgres")

# -- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "short, want",
    [
        ("kcal<200", {"kcal": {"$lt": 200}}),
        ("sodium_mg <= 400.5", {"sodium_mg": {"$lte": 400.5}}),
        ("category=과일", {"category": {"$eq": "과일"}}),
        ("category != 과일", {"category": {"$ne": "과일"}}),
        ("category in (과일, 채소)", {"category": {"$in": ["과일", "채소"]}}),
        ("category not in (과일)", {"category": {"$nin": ["과일"]}}),
        ('code="007"', {"code": {"$eq": "007"}}),
        ("code=007", {"code": {"$eq": "007"}}),  # not a plain numeral: stays text
        ("note ~ 저염", {"note": {"$contains": "저염"}}),
        ("code ~ 12", {"code": {"$contains": "12"}}),  # containment is of text
        ('note ~ "저염 "', {"note": {"$contains": "저염 "}}),
        ("brand?", {"brand": {"$exists": True}}),
        ("!brand", {"brand": {"$exists": False}}),
        ("vegan=true", {"vegan": {"$eq": True}}),
        ("x>=-3", {"x": {"$gte": -3}}),
        ('{"$or": [{"a": 1}, {"b": 2}]}', {"$or": [{"a": 1}, {"b": 2}]}),
    ],
)
def test_short_form(short, want):
    assert parse_short(short) == want
    parse(want)


@pytest.mark.parametrize(
    "where, words",
    [
        ({"a": {"$foo": 1}}, "unknown operator '$foo'"),
        ({"$not": [{"a": 1}]}, "unknown operator '$not'"),
        ({"a": {"$gt": True}}, "not true/false"),
        ({"a": {"$in": 3}}, "takes a list"),
        ({"a": {"$contains": 3}}, "$contains takes a non-empty text"),
        ({"a": {"$exists": "yes"}}, "$exists takes true or false"),
        ({"a": None}, "not null"),
        ({"a": float("nan")}, "not a number that can be compared"),
        ({"a": [1, 2]}, "not a list"),
        ({"$and": []}, "non-empty list"),
        ({}, "empty filter"),
        ([{"a": 1}], "a filter is an object"),
    ],
)
def test_bad_filters_are_refused_with_their_place(where, words):
    with pytest.raises(FilterError, match=None) as err:
        parse(where)
    assert words in str(err.value)


def test_deep_nesting_and_too_many_conditions_are_refused():
    deep: dict = {"a": 1}
    for _ in range(20):
        deep = {"$and": [deep]}
    with pytest.raises(FilterError, match="deeper"):
        parse(deep)
    with pytest.raises(FilterError, match="at most"):
        parse({"$or": [{f"k{n}": n} for n in range(100)]})


@pytest.mark.parametrize("bad", ["kcal", "kcal<<2", "a in 1", "kcal <", '{"a": '])
def test_bad_short_forms(bad):
    with pytest.raises(FilterError):
        parse(parse_short(bad))


# -- the SQL agrees with a plain reading of the rules --------------------------------------
MISSING = object()


def _kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "text"
    return "null"


def holds(where: dict, meta: dict) -> bool:
    """The documented rules, read directly (docs/filters.md)."""
    out = True
    for key, cond in where.items():
        if key == "$and":
            out &= all(holds(w, meta) for w in cond)
            continue
        if key == "$or":
            out &= any(holds(w, meta) for w in cond)
            continue
        ops = cond if isinstance(cond, dict) else {"$eq": cond}
        v = meta.get(key, MISSING)
        for op, x in ops.items():
            same = v is not MISSING and v is not None and _kind(v) == _kind(x)
            if op == "$eq":
                ok = same and v == x
            elif op == "$ne":
                ok = not (same and v == x)
            elif op in ("$gt", "$gte", "$lt", "$lte"):
                cmp = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt}
                ok = same and cmp.get(op, operator.le)(v, x)
            elif op == "$in":
                ok = any(v is not MISSING and _kind(v) == _kind(y) and v == y for y in x)
            elif op == "$nin":
                ok = not any(v is not MISSING and _kind(v) == _kind(y) and v == y for y in x)
            elif op == "$contains":
                ok = isinstance(v, str) and x in v
            elif op == "$exists":
                ok = (v is not MISSING and v is not None) == x
            out &= ok
    return out


VALUES = [0, 1, 2, 150, 200, 200.0, 250.5, -3, "과일", "채소", "200", "저염 간장", ""]
VALUES += [True, False, None]
OPS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$contains", "$exists"]


def _random_condition(rng: random.Random) -> dict:
    key = rng.choice(["kcal", "category", "flag", "note"])
    op = rng.choice(OPS)
    if op in ("$in", "$nin"):
        x = rng.sample([v for v in VALUES if v is not None], 3)
    elif op == "$contains":
        x = rng.choice(["저염", "과", "2"])
    elif op == "$exists":
        x = rng.choice([True, False])
    elif op in ("$gt", "$gte", "$lt", "$lte"):
        x = rng.choice([0, 150, 200, 200.5, "과일", "200"])
    else:
        x = rng.choice([v for v in VALUES if v is not None])
    return {key: {op: x}}


def test_sql_matches_the_rules_on_random_metadata_and_filters(home):
    rng = random.Random(7)
    rows = []
    for n in range(120):
        meta = {}
        for key in ("kcal", "category", "flag", "note"):
            if rng.random() < 0.8:
                meta[key] = rng.choice(VALUES)
        rows.append({"id": f"r{n}", "text": f"음식 {n}", "metadata": meta})
    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        idx.upsert(rows)
        ids = {r.id: r.ext_id for r in idx.items(range(1, 200)).values()}
        stored = {r["id"]: r["metadata"] for r in rows}
        for _ in range(300):
            parts = [_random_condition(rng) for _ in range(rng.randint(1, 3))]
            where = parts[0] if len(parts) == 1 else {rng.choice(["$and", "$or"]): parts}
            got = {ids[int(i)] for i in idx.filtered_ids(parse(where))}
            want = {i for i, m in stored.items() if holds(where, m)}
            assert got == want, where


# -- typed CSV and filtered search end to end ---------------------------------------------
@pytest.fixture
def menu(fakes, tmp_path):
    rows = [
        {"id": f"m{n}", "text": f"메뉴 {n}: 단백질 {n}g", "kcal": str(n * 10), "code": f"{n:03d}",
         "category": ["과일", "채소", "간식"][n % 3]}
        for n in range(1, 61)
    ]  # fmt: skip
    return write_csv(tmp_path / "menu.csv", rows)


def test_csv_numerals_become_numbers_unless_kept_as_text(menu):
    assert run("build", menu, "-q").exit_code == 0
    res = run("search", "메뉴", "--where", "kcal<=100", "-k", "20", "--json")
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)["results"]
    assert sorted(h["metadata"]["kcal"] for h in hits) == list(range(10, 101, 10))
    assert all(isinstance(h["metadata"]["code"], str) for h in hits)  # "007" stays text
    assert run("build", menu, "-q", "--keep-text", "kcal").exit_code == 0
    res = run("search", "메뉴", "--where", "kcal<=100", "-k", "20", "--json")
    assert json.loads(res.stdout)["results"] == []  # kcal is text now: no number matches
    res = run("search", "메뉴", "--where", 'kcal="100"', "--json")
    assert [h["id"] for h in json.loads(res.stdout)["results"]] == ["m10"]


def test_filtered_search_returns_k_whenever_k_match(menu):
    assert run("build", menu, "-q").exit_code == 0
    for where, matching in [
        ("category in (과일,채소)", 40),
        ("kcal>550", 5),
        ('{"$or": [{"kcal": {"$lt": 30}}, {"code": "060"}]}', 3),
    ]:
        for mode in ("hybrid", "dense", "lexical"):
            args = ("--where", where, "-k", "10", "--mode", mode, "--json")
            res = run("search", "메뉴 단백질", *args)
            assert res.exit_code == 0, res.output
            assert len(json.loads(res.stdout)["results"]) == min(10, matching), (where, mode)
    # several --where all hold, and --filter still works beside them
    res = run("search", "메뉴", "--where", "kcal>100", "--where", "kcal<150",
              "--filter", "category=간식", "--json")  # fmt: skip
    assert sorted(h["id"] for h in json.loads(res.stdout)["results"]) == ["m11", "m14"]


def test_bad_where_on_the_cli_is_a_usage_error(menu):
    assert run("build", menu, "-q").exit_code == 0
    res = run("search", "메뉴", "--where", "kcal<<2")
    assert res.exit_code == 2 and "--where" in res.output and "not an operator" in res.output
    res = run("mine", "--where", '{"kcal": {"$between": [1, 2]}}')
    assert res.exit_code == 2 and "unknown operator" in res.output


def test_mining_respects_where(menu):
    assert run("build", menu, "-q").exit_code == 0
    res = run("mine", "--threshold", "-1", "--where", "category=과일", "--json", "-q")
    assert res.exit_code == 0, res.output
    pairs = [json.loads(x) for x in res.stdout.splitlines()]
    fruit = {f"m{n}" for n in range(3, 61, 3)}
    assert pairs and all({p["id_a"], p["id_b"]} <= fruit for p in pairs)


def test_http_where_filters_and_refuses_bad_filters(home, menu):
    with FoodIndex(home, embedder=FakeEmbedder(64)) as idx:
        idx.build([menu], BuildOptions(progress=False))
        with TestClient(create_app(idx, compact_every=0)) as c:
            r = c.post("/search", json={"query": "메뉴", "k": 50, "where": {"kcal": {"$gte": 580}}})
            assert r.status_code == 200
            assert sorted(h["id"] for h in r.json()["results"]) == ["m58", "m59", "m60"]
            r = c.post("/search", json={"query": "메뉴", "where": {"kcal": {"$near": 1}}})
            assert r.status_code == 400 and "unknown operator '$near'" in r.json()["detail"]
            r = c.post("/search", json={"query": "메뉴", "where": {"kcal": {"$gt": [1]}}})
            assert r.status_code == 400
            deep = '{"a": 1}'
            for _ in range(5000):
                deep = '{"$and": [' + deep + "]}"
            r = c.post(
                "/search",
                content='{"query": "메뉴", "where": ' + deep + "}",
                headers={"content-type": "application/json"},
            )
            assert 400 <= r.status_code < 500
            r = c.post("/jobs/mine", json={"where": {"kcal": {"$in": "x"}}})
            assert r.status_code == 400 and "takes a list" in r.json()["detail"]


def test_a_nul_in_metadata_is_refused_by_row(home):
    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        with pytest.raises(Exception, match="NUL"):
            idx.upsert([{"id": "n1", "text": "음식", "metadata": {"note": "a\x00b"}}])
        assert idx.count() == 0


def test_a_repeated_filter_sees_every_write_in_between(home):
    """The ids of a filter are kept per generation: any write makes them stale."""
    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        rows = [{"id": f"f{n}", "text": f"음식 {n}", "metadata": {"kcal": n}} for n in range(10)]
        idx.upsert(rows)
        where = {"kcal": {"$lt": 3}}

        def found():
            return sorted(h.id for h in idx.search("음식", k=10, where=where, mode="dense")[0])

        assert found() == ["f0", "f1", "f2"]
        assert found() == ["f0", "f1", "f2"]  # the kept answer
        idx.update("f5", {"kcal": 1})
        assert found() == ["f0", "f1", "f2", "f5"]
        idx.delete(["f0"])
        assert found() == ["f1", "f2", "f5"]
        idx.upsert([{"id": "f9", "text": "음식 9", "metadata": {"kcal": 0}}])
        assert found() == ["f1", "f2", "f5", "f9"]
        assert idx.delete_where({"kcal": {"$lt": 2}}) == 3  # f1, f5 and f9
        assert found() == ["f2"]
        # another process writing to the same home is seen too
        with FoodIndex(home, embedder=FakeEmbedder(16)) as other:
            other.update("f2", {"kcal": 99})
        assert found() == []


@pytest.mark.parametrize("kind", ["ivf", "hnsw", "ivf-sq8"])
def test_a_filtered_search_on_an_approximate_index_is_exact(home, kind):
    emb = FakeEmbedder(16)
    with FoodIndex(home, embedder=emb) as idx:
        rows = [{"id": f"i{n}", "text": f"음식 {n}번", "metadata": {"n": n}} for n in range(400)]
        idx.upsert(rows, publish=False)
        idx.sync(publish=True, kind=kind)
        assert idx.stats()["index"]["type"] == kind
        qv = emb.encode(["음식 7번"])
        ids, vecs = idx.vectors(idx.filtered_ids(parse({"n": {"$lt": 150}})))
        want = ids[np.argsort(-(vecs @ qv[0]), kind="stable")[:10]]
        scores, got = idx.derived.dense_search(qv, 10, ids)
        assert got[0].tolist() == want.tolist()
        # an id the index does not hold (a write in between): the selector answers
        scores, got = idx.derived.dense_search(qv, 10, np.append(ids, 10**9))
        assert set(got[0].tolist()) <= set(ids.tolist()) and len(got[0]) == 10


def test_with_the_field_index_warmed_a_repeated_filter_sees_every_write(home):
    """As above, filters answered from the field index (``warm_fields``), caught up
    through the change log (which names metadata-only changes too)."""
    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        rows = [{"id": f"f{n}", "text": f"음식 {n}", "metadata": {"kcal": n}} for n in range(10)]
        idx.upsert(rows)
        assert idx.derived.warm_fields()
        where = {"kcal": {"$lt": 3}}

        def found():
            return sorted(h.id for h in idx.search("음식", k=10, where=where, mode="dense")[0])

        assert found() == ["f0", "f1", "f2"]
        idx.update("f5", {"kcal": 1})
        assert found() == ["f0", "f1", "f2", "f5"]
        assert idx.derived._fields is not None
        idx.delete(["f0"])
        assert found() == ["f1", "f2", "f5"]
        idx.upsert([{"id": "f9", "text": "음식 구 새", "metadata": {"kcal": 0}}])
        assert found() == ["f1", "f2", "f5", "f9"]
        assert idx.delete_where({"kcal": {"$lt": 2}}) == 3
        assert found() == ["f2"]
        with FoodIndex(home, embedder=FakeEmbedder(16)) as other:
            other.update("f2", {"kcal": 99})
        assert found() == []
        assert idx.derived._fields is not None
