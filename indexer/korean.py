"""Korean morphological analysis for the lexical index (kiwipiepy).

Only indexing runs the analyzer (build, upsert, catch-up, ``verify``): building a
``Kiwi()`` takes seconds, so it is made lazily, once per process, on the
first item to index. A query never needs it: ``terms.query_terms`` segments a query
against the index's own morpheme vocabulary (see ``terms.py``).

Measured here (2 cores, kiwipiepy 0.24.1): ``Kiwi()`` 0.9-1.2 s and the first analysis
1.4-1.7 s more (the model loads lazily), so the first item a process indexes costs about
2.5 s (5 s with the multi-word dictionary, which is left out); then 0.26-0.50 s per 1,000
rows (name and text), one thread. A server should call ``warm()`` (``FoodIndex.
warm_lexical``) at start so that its first write or catch-up does not pay that.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from .terms import Token, fold, has_hangul, item_terms_from_tokens
from .understand import fact_tokens

_kiwi = None
_lock = threading.Lock()
# Texts are analysed in batches of this many (Kiwi's list API).
BATCH = 512


def kiwi():
    """The process's analyzer, made on first use."""
    global _kiwi
    if _kiwi is None:
        with _lock:
            if _kiwi is None:
                from kiwipiepy import Kiwi

                # Without the multi-word and typo dictionaries Kiwi() and its first
                # analysis take about half as long (2.5 s instead of 5 s here).
                _kiwi = Kiwi(load_multi_dict=False, load_typo_dict=False)
    return _kiwi


def warm() -> None:
    """Make the analyzer and run its first (slow) analysis now."""
    analyse(["김치"])


def analyse(texts: Sequence[str]) -> list[list[Token]]:
    """Kiwi's morphemes of each (already folded) text as (form, tag, start, length);
    texts without Hangul are not analysed (their terms come from patterns)."""
    out: list[list[Token]] = [[] for _ in texts]
    todo = [n for n, t in enumerate(texts) if has_hangul(t)]
    if not todo:
        return out
    k = kiwi()
    with _lock:  # one analysis at a time: a Kiwi object is not documented as thread-safe
        got = k.tokenize([texts[n] for n in todo], split_complex=True)
        for n, toks in zip(todo, got, strict=True):
            out[n] = [(t.form, t.tag, t.start, t.len) for t in toks]
    return out


Fields = tuple[list[str], ...]
# Analyses made ahead of their use (``analyse_ahead``), by (name, text); each is taken
# once by ``item_terms_many``. At most AHEAD_MAX are held.
_ahead: dict[tuple[str | None, str], Fields] = {}
_ahead_lock = threading.Lock()
AHEAD_MAX = 50_000


def analyse_ahead(docs: Iterable[tuple[str | None, str]]) -> int:
    """Analyse (name, text) pairs now, for an ``item_terms_many`` of the same pairs
    soon after: a server's catch-up thread does the slow part here, before it takes the
    index lock that searches wait for. Returns how many were analysed."""
    wanted = list(dict.fromkeys(docs))[:AHEAD_MAX]
    with _ahead_lock:  # what an earlier look made and no catch-up took is dropped
        kept = {d: _ahead[d] for d in wanted if d in _ahead}
        _ahead.clear()
        _ahead.update(kept)
    todo = [d for d in wanted if d not in kept]
    for i in range(0, len(todo), BATCH):
        chunk = todo[i : i + BATCH]
        fields = _terms_many(chunk)
        with _ahead_lock:
            _ahead.update(zip(chunk, fields, strict=True))
    return len(todo)


def item_terms_many(docs: Iterable[tuple[str | None, str]]) -> list[Fields]:
    """The terms of each (name, text) pair's fields (``terms.FIELDS``): four of words,
    then the facts its text states (taken from ``analyse_ahead`` where it made them)."""
    docs = list(docs)
    out: list[Fields | None] = [None] * len(docs)
    if _ahead:
        with _ahead_lock:
            for j, d in enumerate(docs):
                out[j] = _ahead.pop(d, None)
    missing = [j for j, f in enumerate(out) if f is None]
    if missing:
        for j, f in zip(missing, _terms_many([docs[j] for j in missing]), strict=True):
            out[j] = f
    return out  # type: ignore[return-value]


def _terms_many(docs: Sequence[tuple[str | None, str]]) -> list[Fields]:
    pairs = [(fold(n) if n else None, fold(t)) for n, t in docs]
    flat = [p for n, t in pairs for p in ((n or ""), t)]
    toks = analyse(flat) if flat else []
    out = []
    for j, (name, text) in enumerate(pairs):
        fields = item_terms_from_tokens(name, toks[2 * j], text, toks[2 * j + 1])
        out.append((*fields, fact_tokens(text)))
    return out


def batched(
    docs: Iterable[tuple[int, str | None, str]], size: int = BATCH
) -> Iterable[list[tuple[int, tuple[list[str], list[str], list[str]]]]]:
    """(item id, fields) of (item id, name, text) triples, a batch at a time."""
    chunk: list[tuple[int, str | None, str]] = []

    def flush():
        fields = item_terms_many((n, t) for _, n, t in chunk)
        return [(i, f) for (i, _, _), f in zip(chunk, fields, strict=True)]

    for doc in docs:
        chunk.append(doc)
        if len(chunk) >= size:
            yield flush()
            chunk = []
    if chunk:
        yield flush()
