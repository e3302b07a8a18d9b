"""The field index (``indexer.fields``) answers every filter as the database's SQL does,
built from the items and caught up through the change log, and ``filtered_ids`` uses
it once a server has warmed it."""

from __future__ import annotations

import random

import numpy as np

from indexer import FoodIndex
from indexer.fields import FieldIndex
from indexer.filters import Cond, Group, from_text_pairs, parse
from tests.fakes import FakeEmbedder

# Each test runs on SQLite and on PostgreSQL.
STORES = ("sqlite", "postgres")

KEYS = ["kcal", "category", "flag", "note", "a.b", 'q"k', "키"]
# Code-point order against UTF-16 order (U+FF5E sorts before U+1F600 only by code
# point), accents, Hangul, private use, prefixes, numerals as text.
TEXTS = ["", "a", "A", "ab", "a b", "b", "é", "e\u0301", "과일", "과", "채소", "저염 간장"]
TEXTS += ["\uff5e", "😀", "\ue000", "200", "1", "0", "-0", "1.5", "true", "zz"]
INTS = [0, 1, -1, 2, 150, 200, -3, 2**53, -(2**53)]
HUGE = [2**53 + 1, -(2**53) - 1, 2**63 - 1, 2**70]
FLOATS = [0.5, 200.0, -0.0, 250.5, 0.1, 1e16, 1e-300, 1.7976931348623157e308]
SCALARS = TEXTS + INTS + FLOATS + [True, False]
OTHERS = [None, {"a": 1}, [1, 2], []]
OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "exists", "text"]


def _value(rng: random.Random, tame: bool):
    """One metadata value; ``tame``: none the field index declines (huge integers,
    floats and objects under the legacy filter)."""
    pool = TEXTS + INTS + [True, False, None] if tame else SCALARS + HUGE + OTHERS
    return rng.choice(pool)


def random_metadata(rng: random.Random, tame: bool = False) -> dict:
    return {k: _value(rng, tame) for k in KEYS if rng.random() < 0.7}


def _operand(rng: random.Random, op: str):
    if op in ("in", "nin"):
        return tuple(rng.sample(SCALARS + HUGE[:3], rng.randint(0, 4)))
    if op == "contains":
        return rng.choice([t for t in TEXTS if t] + ["과", "a", "ab"])
    if op == "exists":
        return rng.choice([True, False])
    if op in ("gt", "gte", "lt", "lte"):
        return rng.choice([t for t in SCALARS if not isinstance(t, bool)] + [2**53 + 1])
    return rng.choice(SCALARS + [2**53 + 1, 2**63 - 1])


def random_filter(rng: random.Random, depth: int = 0):
    if depth < 2 and rng.random() < 0.35:
        parts = tuple(random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3)))
        return Group(rng.choice(["and", "or"]), parts)
    key = rng.choice([*KEYS, "absent"])
    op = rng.choice(OPS)
    if op == "text":  # the legacy key=value filter, its value written as text
        return from_text_pairs({key: rng.choice(SCALARS)}).parts[0]
    return Cond(key, op, _operand(rng, op))


def _rows(rng: random.Random, n: int, tame: bool = False) -> list[dict]:
    return [
        {"id": f"r{i}", "text": f"음식 {i} {rng.random()}", "metadata": random_metadata(rng, tame)}
        for i in range(n)
    ]


def _all_metadata(idx: FoodIndex) -> list[tuple[int, dict]]:
    return [(r.id, r.metadata) for r in idx._store.page(limit=10**6)]


def _same_as_sql(idx: FoodIndex, fields: FieldIndex, rng: random.Random, n: int) -> int:
    """Asserts the field index answers ``n`` random filters as SQL does (or None);
    returns how many it answered."""
    answered = 0
    for _ in range(n):
        node = random_filter(rng)
        got = fields.evaluate(node)
        if got is None:
            continue
        answered += 1
        want = idx._store.filtered_ids(node)
        assert got.tolist() == want.tolist(), node
    return answered


def test_the_field_index_answers_as_sql_on_random_metadata_and_filters(home):
    rng = random.Random(25)
    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        idx.upsert(_rows(rng, 160))
        fields = FieldIndex.build(_all_metadata(idx))
        assert len(fields) == 160
        answered = _same_as_sql(idx, fields, rng, 700)
        assert answered > 300  # None only where it must be


def test_on_tame_metadata_the_field_index_always_answers(home):
    rng = random.Random(3)
    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        idx.upsert(_rows(rng, 80, tame=True))
        fields = FieldIndex.build(_all_metadata(idx))
        for _ in range(300):
            node = random_filter(rng)
            if any(str(h) in repr(node) for h in HUGE):
                continue
            got = fields.evaluate(node)
            assert got is not None, node
            assert got.tolist() == idx._store.filtered_ids(node).tolist(), node


def test_where_float64_cannot_be_exact_the_field_index_declines():
    fields = FieldIndex.build([(1, {"n": 2**53 + 1, "f": 1.5}), (2, {"n": 3, "t": "x"})])
    assert fields.evaluate(Cond("n", "eq", 3)) is None  # a huge integer among the items
    assert fields.evaluate(Cond("n", "eq", "3")).tolist() == []  # text: exact
    assert fields.evaluate(Cond("t", "lt", 2**53 + 1)) is None  # a huge one in the filter
    assert fields.evaluate(Cond("f", "text", "1.5")) is None  # SQL writes floats its way
    assert fields.evaluate(Cond("t", "text", "x")).tolist() == [2]
    assert fields.evaluate(Group("or", (Cond("t", "eq", "x"), Cond("n", "gt", 1)))) is None


def test_caught_up_through_the_change_log_it_stays_the_same_as_sql(home):
    rng = random.Random(11)
    emb = FakeEmbedder(16)
    with FoodIndex(home, embedder=emb) as idx:
        idx.upsert(_rows(rng, 60))
        assert idx.derived.warm_fields()
        for step in range(12):
            what, kept = step % 4, idx.derived._fields
            if what == 0:  # new items and replaced ones, new distinct texts among them
                rows = _rows(rng, 8)
                for r in rows:
                    r["id"] = f"r{rng.randint(0, 90)}"
                    r["metadata"]["note"] = f"새 {rng.random()}"
                idx.upsert({r["id"]: r for r in rows}.values())
            elif what == 1:
                alive = [r.ext_id for r in idx._store.page(limit=1000)]
                idx.delete(rng.sample(alive, min(5, len(alive))))
            elif what == 2:
                alive = [r.ext_id for r in idx._store.page(limit=1000)]
                for n, ext in enumerate(rng.sample(alive, min(4, len(alive)))):
                    meta = random_metadata(rng)
                    if n % 2:  # a new name too (the lexical index follows it)
                        meta["name"] = f"이름 {rng.random()}"
                    idx.update(ext, meta, unset=[rng.choice(KEYS)])
                # the same texts again with other metadata: no vector changes
                same = [
                    {"id": r.ext_id, "text": r.text, "metadata": random_metadata(rng)}
                    for r in idx._store.page(limit=3)
                ]
                idx.upsert(same)
            else:  # another process writes: this one catches up at its next search
                with FoodIndex(home, embedder=emb) as other:
                    other.upsert(_rows(rng, 3))
                    other.delete([other._store.page(limit=1)[0].ext_id])
                idx.search("음식", k=3, mode="dense", where={"kcal": {"$exists": True}})
            derived = idx.derived
            assert derived._fields is not None
            # caught up in place (the other process's publishing prunes the log behind
            # it: then the field index is built again with the reloaded indexes)
            assert derived._fields is kept or what == 3
            assert derived._fields_gen == derived.memory_generation() == idx._store.generation()
            _same_as_sql(idx, derived._fields, rng, 60)
            fresh = FieldIndex.build(_all_metadata(idx))
            assert derived._fields.ids.tolist() == fresh.ids.tolist()
            assert derived._fields.keys() == fresh.keys()
            assert all(
                (
                    derived._fields.evaluate(Cond(k, "exists", True))
                    == fresh.evaluate(Cond(k, "exists", True))
                ).all()
                for k in fresh.keys()
            )


def test_a_metadata_only_write_is_logged_and_caught_up_without_its_vector(home, monkeypatch):
    """``update`` and an upsert of the same text with other metadata are logged as
    metadata changes (``m``): the field index follows them in place, and the catch-up
    reads no vector for them."""
    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        idx.upsert([{"id": f"m{i}", "text": f"음식 {i}", "kcal": i} for i in range(10)])
        assert idx.derived.warm_fields()
        kept = idx.derived._fields
        where = parse({"kcal": {"$lt": 3}})
        assert len(idx.filtered_ids(where)) == 3
        read = []
        real = idx._store.vectors_for_items

        def spy(model, dim, ids):
            read.extend(np.asarray(ids).tolist())
            return real(model, dim, ids)

        monkeypatch.setattr(idx._store, "vectors_for_items", spy)
        gen = idx._store.generation()
        idx.update("m7", {"kcal": 1}, publish=False)  # the log kept: read below
        idx.upsert([{"id": "m8", "text": "음식 8", "kcal": 2}], publish=False)
        delta = idx._store.changes_since(gen)
        assert delta.touched == set() and len(delta.metadata) == 2
        assert idx.filtered_ids(where).tolist() == idx._store.filtered_ids(where).tolist()
        assert len(idx.filtered_ids(where)) == 5
        assert idx.derived._fields is kept and read == []


def test_filtered_ids_uses_the_warmed_field_index(home, monkeypatch):
    rng = random.Random(5)
    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        idx.upsert(_rows(rng, 50, tame=True))
        sql = idx._store.filtered_ids
        asked = []
        monkeypatch.setattr(
            idx._store, "filtered_ids", lambda node: asked.append(node) or sql(node)
        )
        where = parse({"kcal": {"$gte": 0}})
        before = idx.filtered_ids(where)
        assert len(asked) == 1  # not warmed: the database answers
        assert idx.derived.warm_fields()
        other = parse({"$or": [{"category": {"$in": ["과일", "a"]}}, {"kcal": {"$lt": 2}}]})
        for node in (other, parse({"note": {"$contains": "a"}}), from_text_pairs({"flag": 1})):
            assert idx.filtered_ids(node).tolist() == sql(node).tolist()
        assert len(asked) == 1  # every one answered from memory
        idx.update("r1", {"kcal": 5, "name": "새 이름"})  # caught up, still from memory
        now = idx.filtered_ids(where)
        assert len(asked) == 1 and now.tolist() == sql(where).tolist() != before.tolist()
        found = idx.search("음식", k=50, mode="dense", where={"kcal": {"$lt": 2**53 + 1}})
        assert len(asked) == 2  # beyond float64: the database answers
        assert {h.id for h in found[0]} == {
            idx.items([i])[i].ext_id for i in sql(parse({"kcal": {"$lt": 2**53 + 1}}))
        }


def test_a_rebuild_builds_it_again_and_a_cold_process_never_builds_it(home):
    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        idx.upsert(_rows(random.Random(1), 20, tame=True))
        idx.filtered_ids(parse({"kcal": 1}))
        assert idx.derived._fields is None  # only warm_fields builds it
        assert idx.derived.warm_fields()
        idx.sync(force_rebuild=True)
        derived = idx.derived
        assert derived._fields is not None and derived._fields_gen == derived.memory_generation()
        assert np.array_equal(derived._fields.ids, FieldIndex.build(_all_metadata(idx)).ids)
