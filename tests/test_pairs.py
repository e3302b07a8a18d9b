"""The default recipe's training data stays apart from the lookup benchmark's test half,
and the vocabulary fix covers every Hangul syllable."""

from __future__ import annotations

import json
import random
import shutil

from indexer.embedder import base_model_path
from indexer.knowledge import load_knowledge
from indexer.pairs import (
    NEEDS,
    NUTRIENTS,
    Food,
    all_query_phrasings,
    batches,
    food_stance,
    need_phrasings,
    nutrients_of,
    read_foods,
    reword,
    search_pairs,
    training_examples,
    typed_variants,
)
from indexer.quality import load_corpus, load_queries
from indexer.train import ENGLISH_NAMES_SPLIT, SEARCH_SOURCES, extend_vocabulary, hangul_jamo


def training_foods():
    sample, lookup = SEARCH_SOURCES
    return read_foods(sample) + read_foods(lookup, split=ENGLISH_NAMES_SPLIT)


def test_no_training_query_is_a_benchmark_query():
    bench = {q["query"] for q in load_queries()}
    pairs = search_pairs(training_foods())
    fixed = all_query_phrasings()
    assert not fixed & bench
    # names of dev foods and of the demo corpus may be benchmark name queries, but
    # never a test-half food's text
    test_texts = {r["text"] for r in load_corpus() if r["split"] == "test"}
    assert test_texts and not {t for _, t in pairs} & test_texts
    # the default recipe's examples: an anchor that is not a food's name (as typed, so
    # also with a space moved or a particle after it) nor its text is no benchmark query
    foods = training_foods()
    examples = training_examples(foods, seed=3)
    names = {f.name.replace(" ", "") for f in foods}
    texts = {f.text for f in foods} | {f.english for f in foods if f.english}
    asked = {
        e.anchor
        for e in examples
        if e.anchor not in texts and not any(e.anchor.replace(" ", "").startswith(n) for n in names)
    }
    assert len(asked) > 500 and not asked & bench
    for e in examples:
        assert not {e.anchor, e.positive, e.negative} & test_texts
    need_anchors = {p for n in load_knowledge().needs.values() for p in need_phrasings(n, "help")}
    assert need_anchors <= fixed


def test_pairs_cover_every_kind():
    foods = training_foods()
    pairs = search_pairs(foods, seed=1)
    queries = {q for q, _ in pairs}
    assert {f.name for f in foods} <= queries
    assert any(q in queries for _, asks in NUTRIENTS.values() for q in asks)
    assert any(q in queries for _, says, _ in NEEDS for q in says)
    assert any(f.english in queries for f in foods if f.english)
    assert nutrients_of("두부: 식물성 단백질과 칼슘 풍부") == ["칼슘", "단백질"]


def test_typed_variants_attach_the_right_particle():
    rng = random.Random(0)
    for name, final in (("깻잎", True), ("우유", False)):
        for _ in range(20):
            typed = typed_variants(name, rng)[0]
            particle = typed[len(name) :]
            assert particle in (
                ("이", "을", "은", "도", "이랑", "하고")
                if final
                else ("가", "를", "는", "도", "랑", "하고")
            ), typed


def test_vocabulary_gains_every_missing_jamo(tmp_path):
    from tokenizers import Tokenizer

    added = extend_vocabulary(base_model_path(), tmp_path / "m")
    assert len(added) == 64 and len(hangul_jamo()) == 67
    tok = Tokenizer.from_file(str(tmp_path / "m" / "tokenizer.json"))
    syllables = [chr(c) for c in range(0xAC00, 0xD7A4)]
    unk = [
        s
        for s, e in zip(
            syllables, tok.encode_batch(syllables, add_special_tokens=False), strict=True
        )
        if "[UNK]" in e.tokens
    ]
    assert unk == []
    vocab_lines = (tmp_path / "m" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab_lines[-len(added) :] == added
    assert (
        json.loads((tmp_path / "m" / "tokenizer.json").read_text())["model"]["vocab"][added[-1]]
        == len(vocab_lines) - 1
    )
    shutil.rmtree(tmp_path / "m")


def test_need_examples_come_from_the_knowledge_table_both_ways_round():
    know = load_knowledge()
    foods = training_foods()
    examples = training_examples(foods, seed=0, kinds=("need",))
    says = {
        p: (n.id, side)
        for n in know.needs.values()
        for side in ("help", "harm")
        for p in need_phrasings(n, side)
    }
    sides = {"help": 0, "harm": 0}
    with_negative = 0
    for e in examples:
        need, side = says[e.anchor]
        sides[side] += 1
        helps, harms = food_stance(e.positive, know)
        assert need in (helps if side == "help" else harms), (e.anchor, e.positive)
        if e.negative:
            with_negative += 1
            n_helps, n_harms = food_stance(e.negative, know)
            assert need in (n_harms if side == "help" else n_helps), (e.anchor, e.negative)
    assert sides["help"] > 200 and sides["harm"] > 50 and with_negative > 100
    # a description that says its harm is read as harmful, not as helpful
    helps, harms = food_stance("김치: 유산균 풍부, 나트륨 과다, 혈압 상승 위험", know)
    assert "blood_pressure" in harms and "blood_pressure" not in helps and "gut" in helps


def test_batches_never_hold_one_food_or_need_twice():
    import random

    examples = training_examples(training_foods(), seed=1)
    got = batches(examples, 32, random.Random(0))
    assert sorted(map(id, (e for b in got for e in b))) == sorted(map(id, examples))
    assert all(len(b) <= 32 for b in got)
    assert sum(len(b) == 32 for b in got) >= len(got) - 3
    for b in got:
        keys = [k for e in b for k in e.keys]
        assert len(keys) == len(set(keys))
        docs = [e.positive for e in b] + [e.negative for e in b if e.negative]
        assert len(docs) == len(set(docs))


def test_reword_keeps_the_name_and_changes_the_words():
    import random

    food = Food("귀리", "귀리 (oats): 식이섬유 풍부, 장 건강 지원, 단백질 함량 높음", True)
    rng = random.Random(0)
    copies = {reword(food, rng) for _ in range(20)}
    assert all(c.startswith("귀리 - ") and "oats" not in c for c in copies)
    assert len(copies) > 3 and food.text not in copies
    assert all(c.count(",") == 1 for c in copies)  # one of three clauses left out


def test_dressed_and_reworded_examples_with_a_same_profile_negative():
    from indexer.pairs import MAKERS, SERVINGS, nutrients_of, read_foods, training_examples
    from indexer.train import SEARCH_SOURCES

    foods = read_foods(SEARCH_SOURCES[0])
    texts = {f.text: f for f in foods}
    ex = training_examples(foods, seed=3, kinds=("dressed", "reword", "reword-hard"))
    dressed = [e for e in ex if e.anchor not in texts]
    reworded = [e for e in ex if e.anchor in texts]
    assert len(dressed) == len(reworded) == len(foods)
    for e in dressed:  # a maker, the name, a portion, then the profile after a dash
        maker, rest = e.positive.split(" ", 1)
        assert maker in MAKERS and any(s + " - " in rest for s in SERVINGS)
    with_negative = [e for e in reworded if e.negative]
    assert len(with_negative) > 0.8 * len(reworded)
    for e in with_negative:  # another food that shares a nutrient with the anchor
        other = texts[e.negative]
        assert other.name != texts[e.anchor].name
        assert set(nutrients_of(e.anchor)) & set(nutrients_of(other.text))
    plain = training_examples(foods, seed=3, kinds=("reword",))
    assert not any(e.negative for e in plain)
