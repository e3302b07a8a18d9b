"""The read path: encode queries, top-k inner-product search, join the rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from indexer.ann import EXACT_SUBSET_MAX
from indexer.errors import BadInputError, ModelMismatchError
from indexer.home import FoodIndex
from indexer.text import MAX_TEXT_CHARS, normalize_text

MAX_K = 1000


@dataclass
class Hit:
    id: str
    text: str
    score: float
    metadata: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def top_k_exact(
    queries: np.ndarray, ids: np.ndarray, vecs: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner product over a small set of vectors (pure; no I/O)."""
    k = min(k, len(ids))
    scores = queries @ vecs.T
    if k < len(ids):
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(len(ids)), (len(queries), 1))
    top = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    cols = np.take_along_axis(part, order, axis=1)
    return np.take_along_axis(scores, cols, axis=1), ids[cols]


class Searcher:
    """Semantic lookup over one ``FoodIndex``."""

    def __init__(self, index: FoodIndex):
        self.index = index

    def search(
        self,
        queries: str | Sequence[str],
        k: int = 10,
        filters: dict[str, str] | None = None,
        min_score: float | None = None,
    ) -> list[list[Hit]]:
        """One list of hits per query, best first. ``filters`` are metadata key=value
        pairs (compared as text), applied inside the vector search."""
        if isinstance(queries, str):
            queries = [queries]
        if not queries:
            raise BadInputError("no query given")
        if not 1 <= k <= MAX_K:
            raise BadInputError(f"k must be between 1 and {MAX_K}, not {k}")
        normed = []
        for n, q in enumerate(queries, 1):
            nq = normalize_text(q)
            if not nq:
                raise BadInputError(f"query {n} is empty")
            if len(nq) > MAX_TEXT_CHARS:
                raise BadInputError(
                    f"query {n} is {len(nq)} characters long; the limit is {MAX_TEXT_CHARS}"
                )
            normed.append(nq)
        idx = self.index
        idx.check_model()
        # Encoding is the slow part and needs no lock; the FAISS index is read under
        # the index lock, at the database's current generation.
        qv = idx.embedder.encode(normed)
        allowed = idx.store.filtered_ids(filters) if filters else None
        with idx.lock:
            ann = idx.sync()
            if ann is None or ann.count == 0:
                return [[] for _ in normed]
            if qv.shape[1] != ann.dim:
                raise ModelMismatchError(
                    f"the model makes {qv.shape[1]}-dimensional vectors; the index holds {ann.dim}"
                )
            exact_subset = (
                allowed is not None and ann.kind != "flat" and len(allowed) <= EXACT_SUBSET_MAX
            )
            if not exact_subset:
                scores, ids = ann.search(qv, k, allowed)
        if exact_subset:
            # A narrow filter: exact search over that subset beats a graph walk that
            # would have to skip nearly every node it visits.
            model = idx.store.active_model()
            sub_ids, sub_vecs = idx.store.gather_vectors(model, ann.dim, allowed)
            if len(sub_ids) == 0:
                return [[] for _ in normed]
            scores, ids = top_k_exact(qv, sub_ids, sub_vecs, k)
        rows = idx.store.items_by_ids({int(i) for i in ids.ravel() if i >= 0})
        out: list[list[Hit]] = []
        for qscores, qids in zip(scores, ids, strict=True):
            hits = []
            for s, i in zip(qscores, qids, strict=True):
                row = rows.get(int(i))
                if i < 0 or row is None:
                    continue
                if min_score is not None and s < min_score:
                    continue
                hits.append(Hit(row.ext_id, row.text, float(s), row.metadata))
            out.append(hits)
        return out
