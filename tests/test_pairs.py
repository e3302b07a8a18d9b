"""The default recipe's training data stays apart from the lookup benchmark's test half,
and the vocabulary fix covers every Hangul syllable."""

from __future__ import annotations

import json
import random
import shutil

from indexer.embedder import base_model_path
from indexer.pairs import (
    NEEDS,
    NUTRIENTS,
    all_query_phrasings,
    nutrients_of,
    read_foods,
    search_pairs,
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
