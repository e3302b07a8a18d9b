"""Korean terms of the lexical index: morphemes by kiwipiepy at indexing, a query
segmented against the index's own vocabulary (no analyzer), coverage that counts the
query's missing words."""

from __future__ import annotations

import numpy as np
import pytest

from indexer import korean
from indexer.lexical import LexicalIndex
from indexer.terms import GLUE, KNOWN, UNKNOWN, segment

DOCS = [
    (1, "에너지 음료", "에너지 음료: 카페인 함유"),
    (2, "멸치", "멸치: 칼슘 풍부, 뼈 건강 지원"),
    (3, "해장국", "해장국: 숙취 해소, 따뜻한 국물"),
    (4, "김치찌개", "김치찌개: 김치와 돼지고기, 나트륨 과다"),
    (5, "우유", "우유: 칼슘이 많은 음료"),
    (6, "갈치구이", "갈치구이: 단백질, 오메가3"),
    (7, "무", "무: 소화 지원, 비타민 C 함유"),
    (8, "요구르트", "요구르트: 장 건강, 유산균"),
]


@pytest.fixture(scope="module")
def idx():
    return LexicalIndex.build(DOCS)


def scored(idx, query):
    ids, scores = idx.score(query)
    return {int(i): float(s) for i, s in zip(ids, scores, strict=True) if s > 0}


def test_a_particle_does_not_match_a_word_that_starts_with_it(idx):
    got = scored(idx, "뼈에 좋은 음식")
    assert 1 not in got  # 에 is a particle here, not the start of 에너지
    assert 2 in got  # 뼈 is a whole one-syllable word
    assert scored(idx, "뼈에좋은음식").keys() == got.keys()  # typed without spaces


def test_a_one_syllable_word_does_not_match_inside_a_compound(idx):
    got = scored(idx, "장에 좋은 음식")
    assert 3 not in got  # 해장국 holds 장 only as a syllable
    assert 8 in got  # 장 건강


def test_spacing_variants_find_each_other():
    idx = LexicalIndex.build(DOCS + [(9, None, "김치 찌개: 얼큰한 국물"), (10, None, "갈치 구이")])
    for query in ("김치 찌개", "김치찌개"):
        assert {4, 9} <= scored(idx, query).keys(), query
    assert 6 in scored(idx, "갈치 구이") and 10 in scored(idx, "갈치구이")
    assert max(scored(idx, "갈치 구이"), key=scored(idx, "갈치 구이").get) in (6, 10)


def test_a_particle_after_a_word_is_dropped(idx):
    assert scored(idx, "칼슘이").keys() == scored(idx, "칼슘").keys() == {2, 5}
    assert segment("칼슘이", idx._known) == [("칼슘", KNOWN), ("이", GLUE)]


def test_one_syllable_names_match_as_whole_words(idx):
    assert scored(idx, "무").keys() == {7}
    assert scored(idx, "무를").keys() == {7}


def test_missing_words_count_against_coverage(idx):
    full = idx.full_score("칼슘")
    ids, scores = idx.score("칼슘")
    assert max(scores) / full > 0.5
    # 두리안 and 추천 are in no item: 칼슘 alone is a small part of the query
    full = idx.full_score("두리안 칼슘 추천")
    ids, scores = idx.score("두리안 칼슘 추천")
    assert max(scores) / full < 0.5
    # nothing the index holds: no score and a coverage of 0, not "fully covered"
    assert len(idx.score("두리안을 추천")[0]) == 0
    assert idx.full_score("두리안을 추천") > 0
    # particles and endings never count
    assert idx.query_plan("칼슘이 많은")[1] == 0
    assert segment("두리안을", idx._known) == [("두리안", UNKNOWN), ("을", GLUE)]


def test_a_spelling_the_index_lacks_still_finds_its_neighbour():
    idx = LexicalIndex.build([(1, None, "돈까스: 튀김"), (2, None, "스팸: 가공육")])
    got = scored(idx, "돈가스")
    assert 1 in got and max(got, key=got.get) == 1


def test_query_terms_never_load_the_analyzer(idx, monkeypatch):
    import kiwipiepy

    def boom(*a, **kw):
        raise AssertionError("a query made a Kiwi")

    monkeypatch.setattr(korean, "_kiwi", None)
    monkeypatch.setattr(kiwipiepy, "Kiwi", boom)
    for query in ("뼈에 좋은 음식", "김치 찌개", "칼슘이", "두리안 추천", "vitamin C 12"):
        idx.score(query)
        idx.full_score(query)
    again = LexicalIndex.load_bytes(idx.to_bytes())
    assert again is not None and len(again.score("칼슘")[0]) == 2
    with pytest.raises(AssertionError):
        LexicalIndex.build([(1, None, "김치")])  # indexing does analyse


def test_terms_version_and_verify_see_the_morphemes(idx):
    assert idx.mismatches((i, n, t) for i, n, t in DOCS) == ([], [])
    wrong, extra = idx.mismatches(
        [(i, n, t + " 추가") if i == 2 else (i, n, t) for i, n, t in DOCS]
    )
    assert wrong == [2] and extra == []
    assert np.array_equal(np.sort(idx.ids()), np.arange(1, len(DOCS) + 1))


def test_analyses_made_ahead_are_the_same_and_taken_once(monkeypatch):
    docs = [("김치", "김치: 유산균 풍부, 나트륨 높음"), (None, "현미밥: 식이섬유 풍부")]
    fresh = korean.item_terms_many(docs)
    assert korean.analyse_ahead(docs + docs[:1]) == 2  # a pair repeated is analysed once
    calls = []
    real = korean._terms_many
    monkeypatch.setattr(korean, "_terms_many", lambda d: calls.append(list(d)) or real(d))
    assert korean.item_terms_many(docs) == fresh
    assert calls == []  # both taken from what was made ahead
    assert korean.item_terms_many(docs) == fresh
    assert calls == [docs]  # taken once: analysed again now
    korean.analyse_ahead(docs[:1])
    korean.analyse_ahead(docs[1:])  # a new look drops what the last made and nobody took
    assert list(korean._ahead) == docs[1:]
    korean._ahead.clear()


def test_a_catch_up_read_ahead_gives_the_same_indexes(tmp_path, monkeypatch):
    from indexer import BuildOptions, FoodIndex
    from tests.conftest import write_csv
    from tests.fakes import FakeEmbedder

    emb = FakeEmbedder(16)
    rows = [{"id": f"r{i}", "text": f"음식 {i}: 나트륨 {i} mg, 식이섬유 풍부"} for i in range(300)]
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    writer = FoodIndex(tmp_path / "w", db=db, embedder=emb)
    writer.build([write_csv(tmp_path / "a.csv", rows[:10])], BuildOptions(progress=False))
    reader = FoodIndex(tmp_path / "r", db=db, embedder=emb)
    reader.derived.sync(publish=True)
    writer.build([write_csv(tmp_path / "b.csv", rows[10:])], BuildOptions(progress=False))
    assert reader.read_ahead() == 290
    calls = []
    real = reader._store.vectors_for_items
    monkeypatch.setattr(reader._store, "vectors_for_items", lambda *a: calls.append(a) or real(*a))
    reader.derived.sync(publish=True)
    assert calls == []  # the catch-up read nothing again
    assert korean._ahead == {}  # every analysis made ahead was taken by the catch-up
    fresh = FoodIndex(tmp_path / "f", db=db, embedder=emb)
    fresh.derived.sync(publish=False)
    for q in ("나트륨", "음식 123", "식이섬유"):
        for mode in ("lexical", "dense"):
            got = reader.searcher().search(q, k=5, mode=mode)[0]
            want = fresh.searcher().search(q, k=5, mode=mode)[0]
            assert [h.id for h in got] == [h.id for h in want]
    assert reader.verify() == []
    for idx in (writer, reader, fresh):
        idx.close()


def test_a_server_searches_as_it_is_while_a_big_catch_up_is_applied_in_slices(
    tmp_path, monkeypatch
):
    import threading
    import time

    from indexer import BuildOptions, FoodIndex, derived
    from tests.conftest import write_csv
    from tests.fakes import FakeEmbedder

    emb = FakeEmbedder(16)
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    rows = [{"id": f"r{i}", "text": f"음식 {i}: 나트륨 {i} mg, 식이섬유 풍부"} for i in range(1210)]
    writer = FoodIndex(tmp_path / "w", db=db, embedder=emb)
    writer.build([write_csv(tmp_path / "a.csv", rows[:10])], BuildOptions(progress=False))
    server = FoodIndex(tmp_path / "s", db=db, embedder=emb)
    server.serve_aside()  # a server's way
    server.derived.sync(publish=True)
    writer.build([write_csv(tmp_path / "b.csv", rows[10:])], BuildOptions(progress=False))
    new = rows[700]["text"]
    # a big catch-up is not made inside a search: it answers from the indexes as they are
    before = server.index_counters()["catchups"]
    hits = server.searcher().search(new, k=3, mode="dense")[0]
    assert "r700" not in {h.id for h in hits}
    assert server.index_counters()["catchups"] == before
    assert server.derived.lag() > 0
    # the catch-up thread's way: read ahead, then applied a slice at a time, with
    # searches let in between the slices
    assert server.read_ahead() == 1200
    answered = []
    real = derived.DerivedIndex._let_searches_in

    def let_in(self):
        t = threading.Thread(
            target=lambda: answered.append(server.searcher().search(new, k=1, mode="dense"))
        )
        t.start()
        self._gate.wait(0.2)  # the lock let go: the search goes through meanwhile
        real(self)
        t.join()

    monkeypatch.setattr(derived.DerivedIndex, "_let_searches_in", let_in)
    started = time.monotonic()
    server.derived.sync(publish=True)
    assert len(answered) >= 3  # one slice of about 500 items each, a search in between
    assert time.monotonic() - started < 30
    assert server.derived.lag() == 0
    assert server.searcher().search(new, k=1, mode="dense")[0][0].id == "r700"
    fresh = FoodIndex(tmp_path / "f", db=db, embedder=emb)
    fresh.derived.sync(publish=False)
    for q in ("나트륨", "음식 123", "식이섬유", new):
        for mode in ("lexical", "dense"):
            got = server.searcher().search(q, k=5, mode=mode)[0]
            want = fresh.searcher().search(q, k=5, mode=mode)[0]
            assert [h.id for h in got] == [h.id for h in want]
    assert server.verify() == []
    for idx in (writer, server, fresh):
        idx.close()


def test_a_big_change_is_read_ahead_a_stretch_of_generations_at_a_time(tmp_path, monkeypatch):
    import indexer.storage.slices as slices
    from indexer import BuildOptions, FoodIndex
    from tests.conftest import write_csv
    from tests.fakes import FakeEmbedder

    monkeypatch.setattr(slices, "SLICE_ROWS", 400)  # the build lands in 3 generations
    monkeypatch.setattr(korean, "AHEAD_MAX", 500)  # one of them a stretch
    emb = FakeEmbedder(16)
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    rows = [{"id": f"r{i}", "text": f"음식 {i}: 칼슘 {i} mg"} for i in range(1210)]
    writer = FoodIndex(tmp_path / "w", db=db, embedder=emb)
    writer.build([write_csv(tmp_path / "a.csv", rows[:10])], BuildOptions(progress=False))
    server = FoodIndex(tmp_path / "s", db=db, embedder=emb)
    server.serve_aside()
    server.derived.sync(publish=True)
    start = server.derived.memory_generation()
    writer.build([write_csv(tmp_path / "b.csv", rows[10:])], BuildOptions(progress=False))
    seen = []
    for _ in range(3):
        assert server.read_ahead() == 400
        server.derived.sync(publish=False)
        seen.append(server.derived.memory_generation())
    assert seen == [start + 1, start + 2, start + 3]
    assert server.derived.lag() == 0
    assert server.searcher().search(rows[1000]["text"], k=1, mode="dense")[0][0].id == "r1000"
    writer.close()
    server.close()


def test_a_search_goes_on_while_a_server_copies_its_index_to_save_it(tmp_path, monkeypatch):
    import threading

    from indexer import BuildOptions, FoodIndex, ann
    from tests.conftest import write_csv
    from tests.fakes import FakeEmbedder

    rows = [{"id": f"r{i}", "text": f"음식 {i}: 단백질 {i} g"} for i in range(50)]
    server = FoodIndex(tmp_path / "s", embedder=FakeEmbedder(16))
    server.serve_aside()
    server.build([write_csv(tmp_path / "a.csv", rows)], BuildOptions(progress=False))
    server.upsert([{"id": "new", "text": "새 음식: 단백질 9 g"}], publish=False)
    real = ann.AnnIndex.clone
    answered = []

    def search():
        answered.append(server.searcher().search("새 음식: 단백질 9 g", k=1, mode="dense"))

    def clone(self):
        t = threading.Thread(target=search)
        t.start()
        t.join(10)  # a search waiting for the copy to end would never answer here
        return real(self)

    monkeypatch.setattr(ann.AnnIndex, "clone", clone)
    assert server.publish()
    assert answered and answered[0][0][0].id == "new"
    server.close()


def test_saving_the_lexical_index_leaves_it_as_searches_read_it():
    idx = LexicalIndex.build([(1, "김치", "김치: 유산균 풍부"), (2, None, "현미밥: 식이섬유 풍부")])
    idx.update([2], [(2, None, "현미밥: 식이섬유와 마그네슘 풍부"), (3, None, "두부: 단백질")])
    main, tail = idx.main, dict(idx.tail)
    data = idx.to_bytes()
    assert idx.main is main and idx.tail == tail  # nothing folded under a search's feet
    again = LexicalIndex.load_bytes(data)
    assert sorted(again.ids().tolist()) == [1, 2, 3]
    for q in ("마그네슘", "김치", "단백질"):
        assert again.score(q)[0].tolist() == idx.score(q)[0].tolist()
