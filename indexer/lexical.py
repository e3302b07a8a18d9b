"""The lexical index: BM25 over each item's Korean-aware terms (``terms.py``).

Like the FAISS index it is derived data: built from the items' names and texts,
published next to the FAISS file under the same sidecar and generation, caught up from
the change log, and checked by ``verify``. It lives in memory as a sparse matrix
(items x terms, term frequencies) with a small tail of items changed since the last
compaction; scores are exact BM25 (``k1``, ``b``) over the live items at every moment,
summed over four fields (``terms.FIELDS``) with their weights.

Measured on 390,380 USDA names: SQLite FTS5's ``bm25()`` over ``OR`` queries took
40-140 ms for common English words (it scores every matching row through an auxiliary
function), while this index scores the same postings with numpy in about a millisecond.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import korean, postings
from .postings import Compressed
from .terms import FIELDS, MAX_MORPHEME, TERMS_VERSION, has_hangul, query_terms
from .understand import lexicon_version

FACT = FIELDS.index("fact")

FORMAT = 3
NF = len(FIELDS)
K1 = 1.2
B = 0.75
# Field weights of the name's morphemes, the text's morphemes, the text's noun-run
# bigrams and their syllables (matched only by a query none of whose Hangul words the
# index holds: 요구르트 ~ 요거트), chosen on the dev half of indexer/data/lookup
# (lexical nDCG@10 0.790, hybrid 0.722; every weighting tried was within 0.001 in hybrid).
WEIGHTS = (1.0, 1.0, 0.25, 0.1)
# Items changed since the last compaction are scored from a small tail matrix; past this
# share of the items (or the floor), the tail is folded into the main matrix.
TAIL_SHARE = 0.05
TAIL_FLOOR = 2_000


def _weights(weights: tuple[float, ...] | None) -> tuple[float, ...]:
    """``weights`` (default ``WEIGHTS``), fields it does not name weighted 0: an older
    three-field grid (name, text, bigram) still runs."""
    weights = tuple(weights or WEIGHTS)
    return weights + (0.0,) * (NF - len(weights))


def _key(f: int, term: str) -> str:
    return f"{f}{term}"


@dataclass
class _Doc:
    cols: np.ndarray  # term ids
    tfs: np.ndarray  # term frequencies
    lens: np.ndarray  # length of each field


@dataclass
class LexicalIndex:
    """BM25 over items' fields. Item ids are the store's integer ids."""

    vocab: dict[str, int] = field(default_factory=dict)
    # The main matrix: rows are items (``main_ids``), columns term ids.
    main: Compressed | None = None
    main_csc: Compressed | None = None
    main_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    main_lens: np.ndarray = field(default_factory=lambda: np.zeros((0, NF), np.float32))
    main_alive: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    tail: dict[int, _Doc] = field(default_factory=dict)
    df: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    total_len: np.ndarray = field(default_factory=lambda: np.zeros(NF, np.float64))
    count: int = 0
    # the main matrix's item ids in order and the row of each, made when first needed
    # (a search that ranks no needs never does): ids to rows by binary search
    _by_id: tuple[np.ndarray, np.ndarray] | None = None
    _tail_cache: tuple | None = None
    _buffers: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)
    # The longest Hangul term of the name and text fields (at most MAX_MORPHEME), in
    # characters: how far a query's segmentation looks ahead.
    _max_len: int = 1
    _signs: tuple | None = None

    # -- building -------------------------------------------------------------------
    @classmethod
    def build(cls, docs: Iterable[tuple[int, str | None, str]]) -> LexicalIndex:
        """From (item id, name, text) triples."""
        idx = cls()
        for batch in korean.batched(docs):
            for item_id, fields in batch:
                idx._put(item_id, idx._doc(fields))
        idx.compact()
        return idx

    def _doc(self, fields: tuple[list[str], ...]) -> _Doc:
        counts: dict[int, int] = {}
        for f, words in enumerate(fields):
            for w in words:
                col = self.vocab.setdefault(_key(f, w), len(self.vocab))
                counts[col] = counts.get(col, 0) + 1
                if f < 2 and len(w) > self._max_len and has_hangul(w):
                    self._max_len = min(len(w), MAX_MORPHEME)
        cols = np.fromiter(counts.keys(), np.int64, len(counts))
        tfs = np.fromiter(counts.values(), np.float32, len(counts))
        lens = np.array([len(w) for w in fields], np.float32)
        return _Doc(cols, tfs, lens)

    def _grow_df(self) -> None:
        if len(self.df) < len(self.vocab):
            self.df = np.concatenate([self.df, np.zeros(len(self.vocab) - len(self.df), np.int64)])

    def _put(self, item_id: int, doc: _Doc, dropped: bool = False) -> None:
        """Add (or replace) an item's document (``dropped``: it is known to hold none)."""
        if not dropped:
            self._drop(item_id)
        self._grow_df()
        self.tail[item_id] = doc
        self.df[doc.cols] += 1
        self.total_len += doc.lens
        self.count += 1
        self._tail_cache = None

    def _drop(self, item_id: int) -> None:
        self._drop_many(np.array([item_id], np.int64))

    def _drop_many(self, ids: np.ndarray) -> None:
        """Remove the documents of these items (those it holds)."""
        in_main = []
        for item_id in ids.tolist():
            doc = self.tail.pop(item_id, None)
            if doc is None:
                in_main.append(item_id)
                continue
            self._tail_cache = None
            self._forget(doc)
        if not in_main:
            return
        for row in self._main_rows(np.array(in_main, np.int64)).tolist():
            if row < 0:
                continue
            self.main_alive[row] = False
            lo, hi = self.main.indptr[row], self.main.indptr[row + 1]
            self._forget(_Doc(self.main.indices[lo:hi], self.main.data[lo:hi], self.main_lens[row]))

    def _forget(self, doc: _Doc) -> None:
        self.df[doc.cols] -= 1
        self.total_len -= doc.lens
        self.count -= 1

    def update(self, removed: Iterable[int], docs: Iterable[tuple[int, str | None, str]]) -> None:
        """Remove items, then add (or replace) others; compacts when the tail is large."""
        gone = np.fromiter((int(i) for i in removed), np.int64)
        self._drop_many(gone)
        dropped = set(gone.tolist())
        for batch in korean.batched(docs):
            for item_id, fields in batch:
                item_id = int(item_id)
                self._put(item_id, self._doc(fields), dropped=item_id in dropped)
                dropped.discard(item_id)  # a second document of one id replaces the first
        if len(self.tail) > max(TAIL_FLOOR, TAIL_SHARE * self.count):
            self.compact()

    def compact(self) -> None:
        """Fold the tail into the main matrix and forget removed rows."""
        self._set_main(*self._compacted())
        self.tail = {}
        self._tail_cache = None

    def _compacted(self) -> tuple[Compressed, np.ndarray, np.ndarray]:
        """The main matrix, ids and lengths ``compact`` makes, without changing the
        index (``to_bytes`` reads it beside searches)."""
        rows_cols, rows_tfs, ids, lens = [], [], [], []
        if self.main is not None:
            live = np.flatnonzero(self.main_alive)
            kept = postings.take_rows(self.main, live)
            ids.append(self.main_ids[live])
            lens.append(self.main_lens[live])
        for item_id, doc in self.tail.items():
            rows_cols.append(doc.cols)
            rows_tfs.append(doc.tfs)
            ids.append(np.array([item_id], np.int64))
            lens.append(doc.lens[None, :])
        n_vocab = len(self.vocab)
        tail_m = postings.from_rows(rows_cols, rows_tfs, n_vocab)
        main = postings.stack(kept, tail_m, n_vocab) if self.main is not None else tail_m
        return (
            main,
            np.concatenate(ids) if ids else np.zeros(0, np.int64),
            np.concatenate(lens) if lens else np.zeros((0, NF), np.float32),
        )

    def _set_main(self, main: Compressed, ids: np.ndarray, lens: np.ndarray) -> None:
        """The main matrix (a CSR whose columns are sorted within each row)."""
        self.main = main
        self.main_csc = postings.columns(main)
        self.main_ids = ids.astype(np.int64)
        self.main_lens = lens.astype(np.float32)
        self.main_alive = np.ones(len(ids), bool)
        self._by_id = None

    def _main_rows(self, ids: np.ndarray) -> np.ndarray:
        """The live row of the main matrix holding each item id, -1 for none."""
        ids = np.asarray(ids, np.int64)
        if self.main is None or not len(self.main_ids):
            return np.full(len(ids), -1, np.int64)
        if self._by_id is None:
            order = np.argsort(self.main_ids, kind="stable")
            self._by_id = (self.main_ids[order], order)
        sorted_ids, order = self._by_id
        pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        rows = order[pos]
        return np.where((sorted_ids[pos] == ids) & self.main_alive[rows], rows, -1)

    def _main_row(self, item_id: int) -> int:
        return int(self._main_rows(np.array([item_id]))[0])

    # -- reading --------------------------------------------------------------------
    def ids(self) -> np.ndarray:
        live = self.main_ids[self.main_alive] if self.main is not None else np.zeros(0, np.int64)
        return np.concatenate([live, np.fromiter(self.tail.keys(), np.int64, len(self.tail))])

    def mismatches(
        self, docs: Iterable[tuple[int, str | None, str]]
    ) -> tuple[list[int], list[int]]:
        """Check the index against the items it should hold: (ids whose indexed terms
        are missing or differ from their name and text, ids indexed but not given)."""
        inv = self._inverse_vocab()
        seen: set[int] = set()
        wrong: list[int] = []
        for item_id, fields in (d for batch in korean.batched(docs) for d in batch):
            seen.add(item_id)
            doc = self.tail.get(item_id)
            if doc is None:
                row = self._main_row(item_id)
                if row < 0:
                    wrong.append(item_id)
                    continue
                lo, hi = self.main.indptr[row], self.main.indptr[row + 1]
                doc = _Doc(self.main.indices[lo:hi], self.main.data[lo:hi], self.main_lens[row])
            got = {inv[int(c)]: float(t) for c, t in zip(doc.cols, doc.tfs, strict=True)}
            want: dict[str, float] = {}
            for f, words in enumerate(fields):
                for w in words:
                    want[_key(f, w)] = want.get(_key(f, w), 0.0) + 1.0
            lens = [float(len(w)) for w in fields]
            if got != want or [float(x) for x in doc.lens] != lens:
                wrong.append(item_id)
        extra = sorted(set(self.ids().tolist()) - seen)
        return wrong, extra

    def _inverse_vocab(self) -> list[str]:
        inv = [""] * len(self.vocab)
        for k, v in self.vocab.items():
            inv[v] = k
        return inv

    def _tail_matrix(self) -> tuple[np.ndarray, Compressed, np.ndarray]:
        if self._tail_cache is None:
            ids = np.fromiter(self.tail.keys(), np.int64, len(self.tail))
            docs = list(self.tail.values())
            m = postings.columns(
                postings.from_rows([d.cols for d in docs], [d.tfs for d in docs], len(self.vocab))
            )
            lens = np.stack([d.lens for d in docs]) if docs else np.zeros((0, NF), np.float32)
            self._tail_cache = (ids, m, lens)
        return self._tail_cache

    def _known(self, term: str) -> bool:
        """Whether ``term`` is a morpheme of some live item's name or text."""
        df, n = self.df, len(self.df)
        col = self.vocab.get("1" + term)
        if col is not None and col < n and df[col] > 0:
            return True
        col = self.vocab.get("0" + term)
        return col is not None and col < n and df[col] > 0

    def query_plan(self, query: str) -> tuple[list[tuple[int, int]], int]:
        """(field, term id) of each query term present in the index, and how many of
        the query's content terms (morphemes, unknown words, Latin words) no item holds.
        Segments the query against this index's vocabulary: no analyzer is loaded."""
        content, grams, syllables = query_terms(query, self._known, self._max_len)
        cols: list[tuple[int, int]] = []
        absent = 0
        for f, words in ((0, content), (1, content), (2, grams), (3, syllables)):
            for w in words:
                col = self.vocab.get(_key(f, w))
                if col is not None and col < len(self.df) and self.df[col] > 0:
                    cols.append((f, col))
                elif f == 1 and not self._known(w):
                    absent += 1
        return cols, absent

    def items_with(self, fact: str) -> np.ndarray:
        """The live items whose description states ``fact`` (``need:bones:help``)."""
        col = self.vocab.get(_key(FACT, fact))
        if col is None or col >= len(self.df) or self.df[col] == 0:
            return np.zeros(0, np.int64)
        parts = []
        if self.main_csc is not None and col < self.main_csc.shape[1]:
            rows = self.main_csc.indices[self.main_csc.indptr[col] : self.main_csc.indptr[col + 1]]
            parts.append(self.main_ids[rows[self.main_alive[rows]]])
        tail_ids, tail_m, _ = self._tail_matrix()
        if tail_m.shape[0] and col < tail_m.shape[1]:
            parts.append(tail_ids[tail_m.indices[tail_m.indptr[col] : tail_m.indptr[col + 1]]])
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def fact_balance(
        self, ids: np.ndarray, goodness: Callable[[str], int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(good facts, bad facts) each item of ``ids`` states, by ``goodness`` of each
        fact token (+1, -1 or 0); items not in the index count none."""
        sign = self._fact_signs(goodness)
        good = np.zeros(len(ids))
        bad = np.zeros(len(ids))
        found = self._main_rows(ids)  # an item in the tail has no live main row
        if self.tail:
            for n in np.flatnonzero(found < 0).tolist():
                doc = self.tail.get(int(ids[n]))
                if doc is not None:
                    s = sign[doc.cols[doc.cols < len(sign)]]
                    good[n], bad[n] = (s > 0).sum(), (s < 0).sum()
        at = np.flatnonzero(found >= 0)
        rows = found[at]
        if len(rows):
            sub = postings.take_rows(self.main, rows)
            cols = sub.indices
            s = np.where(cols < len(sign), sign[np.minimum(cols, len(sign) - 1)], 0)
            which = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
            good[at] = np.bincount(which, weights=s > 0, minlength=len(rows))
            bad[at] = np.bincount(which, weights=s < 0, minlength=len(rows))
        return good, bad

    def _fact_signs(self, goodness: Callable[[str], int]) -> np.ndarray:
        """The goodness of every column (0 for words), cached until the vocabulary grows."""
        cached = self._signs
        if cached is not None and cached[0] is goodness and len(cached[1]) == len(self.vocab):
            return cached[1]
        sign = np.zeros(len(self.vocab), np.int8)
        prefix = str(FACT)
        for term, col in self.vocab.items():
            if term.startswith(prefix) and ":" in term:
                sign[col] = goodness(term[len(prefix) :])
        self._signs = (goodness, sign)
        return sign

    def query_columns(self, query: str) -> list[tuple[int, int]]:
        """(field, term id) of each query term present in the index."""
        return self.query_plan(query)[0]

    def score(
        self,
        query: str,
        weights: tuple[float, ...] | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, BM25 scores) of every live item sharing a term with the query,
        restricted to ``allowed`` item ids when given; unordered. ``weights``: of the
        name, text, bigram and syllable fields (default ``WEIGHTS``)."""
        weights = _weights(weights)
        cols = self.query_columns(query)
        if not cols or self.count == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        n = self.count
        avg = np.maximum(self.total_len / n, 1e-9)
        parts_ids, parts_scores = [], []
        tail_ids, tail_m, tail_lens = self._tail_matrix()
        for seg_ids, seg_m, seg_lens, alive in (
            (self.main_ids, self.main_csc, self.main_lens, self.main_alive),
            (tail_ids, tail_m, tail_lens, None),
        ):
            if seg_m is None or seg_m.shape[0] == 0:
                continue
            scratch = self._scratch(seg_m.shape[0])
            touched = []
            for f, col in cols:
                if col >= seg_m.shape[1]:
                    continue
                lo, hi = seg_m.indptr[col], seg_m.indptr[col + 1]
                if lo == hi:
                    continue
                rows = seg_m.indices[lo:hi]
                tf = seg_m.data[lo:hi]
                df = self.df[col]
                idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
                norm = K1 * (1.0 - B + B * seg_lens[rows, f] / avg[f])
                # Rows are distinct within one column, so this fancy-index add is exact.
                scratch[rows] += weights[f] * idf * tf * (K1 + 1.0) / (tf + norm)
                touched.append(rows)
            if not touched:
                continue
            hit = touched[0]
            if len(touched) > 1:
                # the rows any term touched, in order: marked, then found in one scan
                # (sorting the terms' postings costs more for common words)
                mark = self._marks(seg_m.shape[0])
                for rows in touched:
                    mark[rows] = True
                hit = np.flatnonzero(mark)
                mark[hit] = False
            got = scratch[hit].astype(np.float32)
            scratch[hit] = 0.0
            if alive is not None:
                keep = alive[hit]
                hit, got = hit[keep], got[keep]
            parts_ids.append(seg_ids[hit])
            parts_scores.append(got)
        if not parts_ids:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        ids = np.concatenate(parts_ids)
        scores = np.concatenate(parts_scores)
        if allowed is not None:
            keep = np.isin(ids, allowed)
            ids, scores = ids[keep], scores[keep]
        return ids, scores

    def full_score(self, query: str, weights: tuple[float, ...] | None = None) -> float:
        """The score of an item holding each query term once, at average length: what
        a lexical score is divided by to say how much of the query an item covers. A
        content term no item holds counts too (as a text term of df 0), so a query whose
        meaningful words are missing is not covered by the rest; particles and endings
        never count."""
        weights = _weights(weights)
        n = self.count
        cols, absent = self.query_plan(query)
        total = absent * weights[1] * float(np.log(1.0 + (n + 0.5) / 0.5))
        for f, col in cols:
            df = self.df[col]
            total += weights[f] * float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))
        return total

    def _scratch(self, n: int) -> np.ndarray:
        """A zeroed buffer of ``n`` scores, reused across queries (left zeroed): one for
        the main matrix's rows and one for the tail's."""
        return self._buffer(n, np.float64)

    def _marks(self, n: int) -> np.ndarray:
        """A cleared buffer of ``n`` flags, reused across queries (left cleared)."""
        return self._buffer(n, np.bool_)

    def _buffer(self, n: int, dtype: type) -> np.ndarray:
        key = (n, np.dtype(dtype).char)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) >= 4:  # sizes of matrices no longer held
                self._buffers = {}
            buf = self._buffers[key] = np.zeros(n, dtype)
        return buf

    # -- files ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The index as an ``.npz`` file's bytes, compacted (the index itself is left
        as it is: searches may read it meanwhile)."""
        main, ids, lens = self.main, self.main_ids, self.main_lens
        if self.tail or self.main is None or not self.main_alive.all():
            main, ids, lens = self._compacted()
        inv = "\n".join(self._inverse_vocab()).encode("utf-8")
        buf = io.BytesIO()
        np.savez(
            buf,
            format=np.array([FORMAT, TERMS_VERSION, lexicon_version()], np.int64),
            vocab=np.frombuffer(inv, np.uint8),
            indptr=main.indptr,
            indices=main.indices,
            data=main.data,
            ids=ids,
            lens=lens.astype(np.float32),
        )
        return buf.getvalue()

    @classmethod
    def load(cls, path: Path) -> LexicalIndex | None:
        """None when the file is missing, unreadable or of another format."""
        try:
            data = path.read_bytes()
        except OSError:
            return None
        return cls.load_bytes(data)

    @classmethod
    def load_bytes(cls, data: bytes) -> LexicalIndex | None:
        """None when the bytes are not a consistent index of this format: every size,
        shape, dtype, range and order is checked before a matrix is built, since
        the search's numpy indexing trusts their ranges."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                if z["format"].tolist() != [FORMAT, TERMS_VERSION, lexicon_version()]:
                    return None
                vocab_bytes = z["vocab"]
                if vocab_bytes.dtype != np.uint8 or vocab_bytes.ndim != 1:
                    return None
                words = bytes(vocab_bytes).decode("utf-8")
                vocab_list = words.split("\n") if words else []
                arrays = _checked_arrays(
                    z["indptr"], z["indices"], z["data"], z["ids"], z["lens"], len(vocab_list)
                )
        except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError, zipfile.BadZipFile):
            return None
        if arrays is None or len(set(vocab_list)) != len(vocab_list):
            return None
        indptr, indices, values, ids, lens = arrays
        main = Compressed(indptr, indices, values, (len(ids), len(vocab_list)))
        if not postings.canonical(main):  # to_bytes writes sorted, distinct columns
            return None
        idx = cls(vocab={w: n for n, w in enumerate(vocab_list)})
        idx._max_len = min(
            max((len(w) - 1 for w in vocab_list if w[:1] in "01" and has_hangul(w)), default=1),
            MAX_MORPHEME,
        )
        idx._set_main(main, ids, lens)
        idx.df = np.bincount(main.indices, minlength=len(vocab_list)).astype(np.int64)
        idx.total_len = lens.sum(axis=0).astype(np.float64)
        idx.count = len(ids)
        return idx


def _checked_arrays(
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    ids: np.ndarray,
    lens: np.ndarray,
    n_vocab: int,
) -> tuple[np.ndarray, ...] | None:
    """The arrays of a saved main matrix, converted to their working dtypes, or None
    when they do not describe one: (indptr, indices, data, ids, lens)."""
    ints = (indptr, indices, ids)
    if any(a.ndim != 1 or a.dtype.kind not in "iu" for a in ints):
        return None
    if values.ndim != 1 or values.dtype.kind != "f" or lens.dtype.kind != "f":
        return None
    n = len(ids)
    if lens.shape != (n, NF) or len(indptr) != n + 1 or len(indices) != len(values):
        return None
    indptr, indices, ids = (a.astype(np.int64) for a in ints)
    if indptr[0] != 0 or indptr[-1] != len(indices) or (np.diff(indptr) < 0).any():
        return None
    if len(indices) and (indices.min() < 0 or indices.max() >= n_vocab):
        return None
    if n and (ids.min() < 0 or len(np.unique(ids)) != n):
        return None
    values, lens = values.astype(np.float32), lens.astype(np.float32)
    for a in (values, lens):
        if not np.isfinite(a).all() or (a < 0).any():
            return None
    return indptr, indices, values, ids, lens


__all__ = ["LexicalIndex", "FIELDS", "WEIGHTS"]
