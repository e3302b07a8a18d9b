"""Retrieval: dense, lexical and hybrid search over a home's parts: its store (the
rows), its derived indexes (``indexer.derived``: FAISS and lexical) and its model.

- ``dense``: encode the query, top-k cosine in FAISS (exactly the plain vector search).
- ``lexical``: BM25 over Korean-aware terms (``indexer.terms``), ranked by coverage.
- ``hybrid`` (the default): both legs' candidates, each scored by both, fused as
  ``ALPHA * cosine + (1 - ALPHA) * coverage``, where coverage is the BM25 score divided
  by the score of an item holding every query term once (about 1 for a full match).
  An item whose name equals the query (spacing, case and a trailing particle ignored)
  comes first. Filters restrict both legs before they rank.

A hybrid or lexical query that names a need or nutrient is ranked by how each candidate
serves it (``_judged``, ``indexer.ranking``): candidates that oppose it are left out.
Every mode's ``score`` is calibrated into [0, 1] (``indexer.scores``); the raw cosine
and coverage stay in ``dense`` and ``lexical``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .derived import DerivedIndex
from .errors import BadInputError, FoodvecError
from .filters import filter_node
from .health import HealthHead, head_for
from .home_model import HomeModel
from .ranking import (
    final_score,
    item_facts,
    judge,
    judge_many,
    member,
    plan,
    query_side,
    stand_in_health,
    token_goodness,
)
from .scores import calibrated
from .storage import ItemRow, Store
from .terms import query_name_keys
from .text import MAX_TEXT_CHARS, normalize_text
from .understand import lexicon, parse_query

MAX_K = 1000
MODES = ("hybrid", "dense", "lexical")
# Chosen on the dev half of indexer/data/lookup (bench.lookup --tune; docs/searching.md): the
# weight of the cosine in the fused score (0.2 to 0.6 scored within 0.001 of each
# other there; 0.6 also keeps hybrid at or above dense on the English retrieval set,
# where 0.2 and 0.3 fell 0.005 below it), and how many candidates each leg offers (20,
# 50 and 100 tied).
ALPHA = 0.6
CANDIDATES = 50
# At most this many candidates of a query that names needs are scored in full (their
# vectors read): the best by support, then by keyword relevance.
JUDGED = 300
# The health score of a judged candidate: this share from the model's health head (when
# it has one), the rest from the facts its description states (``stand_in_health``).
HEAD_SHARE = 0.5
_GOODNESS: dict[int, Any] = {}


@dataclass
class Hit:
    id: str
    text: str
    score: float
    metadata: dict[str, Any]
    dense: float | None = None
    lexical: float | None = None
    # Why it matched: the clauses of its description that serve the query's needs and
    # nutrients (queries that name a need or nutrient).
    why: list[str] | None = None
    # How healthy its profile reads, in [0, 1]: the model's health head on its vector
    # (``indexer.health``), blended with the facts its text states when the needs
    # ranking judged it; None for a model without a head and no judging.
    health: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "text": self.text, "score": self.score, "metadata": self.metadata}
        if self.dense is not None:
            out["dense"] = self.dense
        if self.lexical is not None:
            out["lexical"] = self.lexical
        if self.why is not None:
            out["why"] = self.why
        if self.health is not None:
            out["health"] = self.health
        return out


def fuse(
    dense: dict[int, float], lexical: dict[int, float], alpha: float, first: Sequence[int] = ()
) -> list[tuple[int, float]]:
    """Rank candidates by ``alpha * dense + (1 - alpha) * lexical`` (a missing score
    counts 0), the ids in ``first`` ahead of all others; ties by id (pure)."""
    ids = set(dense) | set(lexical) | set(first)
    scored = [(i, alpha * dense.get(i, 0.0) + (1.0 - alpha) * lexical.get(i, 0.0)) for i in ids]
    lead = set(first)
    scored.sort(key=lambda p: (p[0] not in lead, -p[1], p[0]))
    return scored


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` highest scores (in no particular order)."""
    if len(scores) <= n:
        return np.arange(len(scores))
    return np.argpartition(-scores, n - 1)[:n]


def _union(parts: list[np.ndarray]) -> np.ndarray:
    """The sorted union of arrays of item ids (small non-negative integers), by a mask
    over the id range."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return np.zeros(0, np.int64)
    mask = np.zeros(max(int(p.max()) for p in parts) + 1, bool)
    for p in parts:
        mask[p] = True
    return np.flatnonzero(mask)


class Searcher:
    """Food lookup over a home's parts: ``store`` (the rows and their names),
    ``derived`` (the FAISS and lexical indexes, read at one generation) and ``model``
    (the encoder, loaded only by a search that needs it, and its health head).
    ``FoodIndex.searcher`` makes one for a home."""

    def __init__(
        self,
        store: Store,
        derived: DerivedIndex,
        model: HomeModel,
        alpha: float = ALPHA,
        candidates: int = CANDIDATES,
        needs: bool = True,
    ):
        self.store = store
        self.derived = derived
        self.model = model
        self.alpha = alpha
        self.candidates = candidates
        # False: rank as before the needs ranking existed (the baseline of bench.needs).
        self.needs = needs

    def search(
        self,
        queries: str | Sequence[str],
        k: int = 10,
        filters: dict[str, Any] | None = None,
        min_score: float | None = None,
        mode: str = "hybrid",
        where: dict[str, Any] | None = None,
    ) -> list[list[Hit]]:
        """One list of hits per query, best first, all read from one snapshot of the
        database and the indexes at its generation (``DerivedIndex.reading``).
        ``where`` is a filter in the filter language (``indexer.filters``); ``filters``
        are key=value pairs compared as text. Both apply inside each leg's search, so
        k results come back whenever k items match."""
        normed = _checked_queries(queries, k, mode)
        with self.derived.reading():
            if mode != "lexical":  # keyword search needs no model, so it loads none
                self.model.check()
            node = filter_node(filters, where)
            allowed = self.derived.filtered_ids(node) if node is not None else None
            if mode == "dense":
                ranked = self._dense(normed, k, allowed)
                found = [
                    [(i, calibrated("dense", s), s, None) for i, s in zip(*r, strict=True)]
                    for r in ranked
                ]
            elif mode == "lexical":
                found = [self._lexical_only(q, k, allowed) for q in normed]
            else:
                found = self._hybrid(normed, k, allowed)
            want = {i for hits in found for i, *_ in hits}
            rows = self.store.items_by_ids(want) if want else {}
            return self._hits(found, rows, min_score)

    def _hits(
        self, found: list[list[tuple]], rows: dict[int, ItemRow], min_score: float | None
    ) -> list[list[Hit]]:
        """The ranked candidates of each query as hits (those still in the database,
        at ``min_score`` or above), with why they matched and their health."""
        kb = lexicon().knowledge
        out: list[list[Hit]] = []
        placed: list[tuple[int, Hit]] = []
        for hits in found:
            got = []
            for i, score, dense, lexical, *extra in hits:
                row = rows.get(int(i))
                if row is None or (min_score is not None and score < min_score):
                    continue
                why = health = None
                if extra:  # a judged hit: the clauses of its text that decided it
                    parse, health = extra
                    why = judge(parse, list(item_facts(row.text)), kb).why
                hit = Hit(
                    row.ext_id,
                    row.text,
                    float(score),
                    row.metadata,
                    dense,
                    lexical,
                    why,
                    None if health is None else round(float(health), 4),
                )
                got.append(hit)
                placed.append((int(i), hit))
            out.append(got)
        self._with_health(placed)
        return out

    def _judged(
        self,
        query: str,
        allowed: np.ndarray | None,
        k: int,
        first: Sequence[int],
        dense: dict[int, float],
        lexical: dict[int, float],
        vec: np.ndarray | None,
    ) -> list[tuple] | None:
        """Rank by how candidates serve the query's needs and nutrients (``indexer.
        ranking``); None when the query names none (or the needs ranking is off).

        The candidates are the legs' own (``dense``: item -> cosine, ``lexical``: item
        -> coverage) and every item whose description states a fact that serves a
        target, read from the lexical index's fact field; those that oppose a target are
        left out. Relevance is the hybrid score of the query's remaining words (the kind
        of food asked for); without ``vec`` (lexical mode) their coverage alone."""
        if not self.needs:
            return None
        parse = parse_query(query)
        if not parse.targets:
            return None
        kb = lexicon().knowledge
        pool, support, lead, rest = self._judged_pool(parse, kb, allowed, first, dense, lexical)
        cos = np.array([dense.get(int(i), np.nan) for i in pool])
        if vec is not None:
            missing = np.flatnonzero(np.isnan(cos))
            if len(missing):
                ids, vecs = self.derived.index_vectors(pool[missing].tolist())
                got = dict(zip(ids.tolist(), (vecs @ vec).tolist(), strict=True))
                cos[missing] = [got.get(int(i), 0.0) for i in pool[missing]]
            base = self.alpha * cos + (1.0 - self.alpha) * rest
        else:
            cos[:] = np.nan
            base = rest
        good, bad = self.derived.fact_balance(pool, self._goodness(kb))
        health = stand_in_health(good, bad)
        head = self._head()
        if head is not None and len(pool):
            ids, vecs = self.derived.index_vectors(pool.tolist())
            got = dict(zip(ids.tolist(), head.score(vecs).tolist(), strict=True))
            learned = np.array([got.get(int(i), 0.5) for i in pool])
            health = HEAD_SHARE * learned + (1.0 - HEAD_SHARE) * health
        score = final_score(support, base, health, query_side(parse))
        order = np.lexsort((pool, -score, ~lead))[:k]
        return [
            (
                int(pool[o]),
                calibrated("judged", float(score[o])),
                None if np.isnan(cos[o]) else float(cos[o]),
                lexical.get(int(pool[o]), 0.0),
                parse,
                float(health[o]),
            )
            for o in order
        ]

    def _judged_pool(
        self,
        parse: Any,
        kb: Any,
        allowed: np.ndarray | None,
        first: Sequence[int],
        dense: dict[int, float],
        lexical: dict[int, float],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The candidates a needs query judges: (item ids, support, whether each is an
        exact name, the keyword relevance of the query's remaining words), those that
        oppose a target left out, at most ``JUDGED`` of them."""
        p = plan(parse, kb)
        rest_q = [parse.rest] if parse.rest else []
        scored, holders = self.derived.lexical_read(rest_q, p.tokens, allowed)
        serving = [holders[t] for ts in p.serve for t, _ in ts if len(holders[t])]
        parts = [
            np.fromiter(dense, np.int64, len(dense)),
            np.fromiter(lexical, np.int64, len(lexical)),
            np.asarray(first, np.int64),
            *serving,
        ]
        pool = _union(parts)
        support, against = judge_many(p, pool, holders)
        lead = member(pool, np.asarray(first, np.int64))
        keep = ~against | lead
        pool, support, lead = pool[keep], support[keep], lead[keep]
        rest = np.zeros(len(pool))
        if scored and scored[0][2] > 0 and len(scored[0][0]) and len(pool):
            r_ids, r_scores, r_full = scored[0]
            by_id = np.zeros(int(max(r_ids.max(), pool.max())) + 1)
            by_id[r_ids] = r_scores / r_full
            rest = by_id[pool]
        if len(pool) > JUDGED:  # the best by support, then keyword relevance, go on
            key = 4.0 * lead + support + 1e-3 * np.minimum(rest, 1.0)
            top = np.argpartition(-key, JUDGED - 1)[:JUDGED]
            pool, support, lead, rest = pool[top], support[top], lead[top], rest[top]
        return pool, support, lead, rest

    def _head(self) -> HealthHead | None:
        """The model's health head (``indexer.health``), None without one."""
        try:
            return head_for(self.model.spec())
        except FoodvecError:
            return None

    def _with_health(self, hits: list[tuple[int, Hit]]) -> None:
        """Give every hit (item id, hit) without a health score the head's, when the
        model has a head (a hit the needs ranking judged has one already)."""
        todo = [(i, h) for i, h in hits if h.health is None]
        head = self._head() if todo else None
        if head is None:
            return
        got_ids, vecs = self.derived.index_vectors(sorted({i for i, _ in todo}))
        by_id = dict(zip(got_ids.tolist(), head.score(vecs).tolist(), strict=True))
        for i, h in todo:
            if i in by_id:
                h.health = round(float(by_id[i]), 4)

    def _goodness(self, kb: Any):
        """The goodness of a fact token (one function per knowledge table, so that the
        lexical index caches its column signs)."""
        fn = _GOODNESS.get(id(kb))
        if fn is None:
            fn = functools.partial(token_goodness, kb=kb)
            _GOODNESS.clear()
            _GOODNESS[id(kb)] = fn
        return fn

    # -- the legs -------------------------------------------------------------------
    def _encode(self, normed: list[str]) -> np.ndarray:
        return self.model.embedder.encode(normed)

    def _dense(
        self, normed: list[str], k: int, allowed: np.ndarray | None, qv: np.ndarray | None = None
    ) -> list[tuple[list[int], list[float]]]:
        """Top-k cosine per query: (item ids, scores). Encoding is the slow part and
        runs before the index is read."""
        if qv is None:
            qv = self._encode(normed)
        scores, ids = self.derived.dense_search(qv, k, allowed)
        out = []
        for qs, qi in zip(scores, ids, strict=True):
            keep = qi >= 0
            out.append((qi[keep].tolist(), qs[keep].tolist()))
        return out

    def _name_matches(self, query: str, allowed: np.ndarray | None) -> list[int]:
        keys = query_name_keys(query)
        by_key = self.store.ids_by_name_keys(keys)
        keep = set(allowed.tolist()) if allowed is not None else None
        for key in keys:  # the query as typed wins over the query without its particle
            ids = by_key.get(key, [])
            if keep is not None:
                ids = [i for i in ids if i in keep]
            if ids:
                return ids
        return []

    def _lexical_only(self, query: str, k: int, allowed: np.ndarray | None) -> list[tuple]:
        ids, scores, full = self.derived.lexical_scores(query, allowed)
        first = self._name_matches(query, allowed)
        top = _top(scores, max(k, self.candidates) + len(first))
        lexical = dict(zip(ids[top].tolist(), scores[top].tolist(), strict=True))
        for i in first:  # an exact name the top did not reach keeps its own score
            hit = np.flatnonzero(ids == i)
            lexical.setdefault(i, float(scores[hit[0]]) if len(hit) else 0.0)
        cover = {i: s / full if full > 0 else 0.0 for i, s in lexical.items()}
        judged = self._judged(query, allowed, k, first, {}, cover, None)
        if judged is not None:
            return judged
        ranked = fuse({}, cover, 0.0, first)
        return [(i, calibrated("lexical", s), None, s) for i, s in ranked[:k]]

    def _hybrid(self, normed: list[str], k: int, allowed: np.ndarray | None) -> list[list[tuple]]:
        n = max(k, self.candidates)
        qv = self._encode(normed)
        dense_lists = self._dense(normed, n, allowed, qv)
        out = []
        for q, vec, (d_ids, d_scores) in zip(normed, qv, dense_lists, strict=True):
            lex_ids, lex_scores, full = self.derived.lexical_scores(q, allowed)
            cover = lex_scores / full if full > 0 else lex_scores
            lexical: dict[int, float] = {}
            if len(lex_ids):
                top = _top(cover, n)
                lexical = dict(zip(lex_ids[top].tolist(), cover[top].tolist(), strict=True))
                # Dense candidates take their lexical score too.
                order = np.argsort(lex_ids)
                sorted_ids = lex_ids[order]
                for i in d_ids:
                    pos = np.searchsorted(sorted_ids, i)
                    if pos < len(sorted_ids) and sorted_ids[pos] == i:
                        lexical[i] = float(cover[order[pos]])
            first = self._name_matches(q, allowed)
            dense = dict(zip(d_ids, d_scores, strict=True))
            # Lexical candidates (and exact names) the dense leg did not reach take
            # their cosine from their vectors in the index.
            need = [i for i in set(lexical) | set(first) if i not in dense]
            ids, vecs = self.derived.index_vectors(need) if need else (None, None)
            if ids is not None and len(ids):
                dense.update(zip(ids.tolist(), (vecs @ vec).tolist(), strict=True))
            judged = self._judged(q, allowed, k, first, dense, lexical, vec)
            if judged is not None:
                out.append(judged)
                continue
            ranked = fuse(dense, lexical, self.alpha, first)[:k]
            out.append(
                [
                    (i, calibrated("hybrid", s), dense.get(i, 0.0), lexical.get(i, 0.0))
                    for i, s in ranked
                ]
            )
        return out


def _checked_queries(queries: str | Sequence[str], k: int, mode: str) -> list[str]:
    """The queries normalised (``text.normalize_text``), or BadInputError for a search
    that cannot be made: no query, an empty or oversized one, k or mode out of range."""
    if isinstance(queries, str):
        queries = [queries]
    if not queries:
        raise BadInputError("no query given")
    if not 1 <= k <= MAX_K:
        raise BadInputError(f"k must be between 1 and {MAX_K}, not {k}")
    if mode not in MODES:
        raise BadInputError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    normed = []
    for n, q in enumerate(queries, 1):
        nq = normalize_text(q)
        if not nq:
            raise BadInputError(f"query {n} is empty")
        if "\x00" in nq:
            raise BadInputError(f"query {n} holds a NUL character")
        if len(nq) > MAX_TEXT_CHARS:
            raise BadInputError(
                f"query {n} is {len(nq)} characters long; the limit is {MAX_TEXT_CHARS}"
            )
        normed.append(nq)
    return normed
