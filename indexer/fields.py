"""The field index: the items' metadata in columns, in memory, so that a filter
(``indexer.filters``) is answered without reading every item's JSON from the database.

Each metadata key is a column over the items (kept in id order): a type code per item,
the numbers as float64, and the texts as int32 ranks into the key's sorted distinct
texts. Python orders ``str`` by code point, as SQLite (BINARY) and PostgreSQL
(``COLLATE "C"``) order text here, so a text comparison is an integer comparison, and
``$contains`` is decided once per distinct text.

The answers are the SQL's (``indexer.storage.where``) to the id: numbers compare only
with numbers, texts with texts, true and false only with themselves; ``$ne`` and
``$nin`` also match items without the key (or with null). Where float64 cannot be
exact (an integer beyond 2**53 in the items or the filter), or the legacy key=value
filter meets a value whose text SQL writes its own way (a float, an object or list),
``evaluate`` answers None: the caller asks the database.
"""

from __future__ import annotations

import math
import re
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .filters import Cond, Group, Node

# The type of one item's value under a key.
MISSING, NULL, INT, FLOAT, HUGE, TEXT, TRUE, FALSE, OTHER = range(9)
# Integers up to this size are exact in float64; beyond it a number is HUGE.
EXACT = 2**53
# An integer as SQLite's CAST(... AS TEXT) writes it (never "-0", "+1" or "01").
_INT_TEXT = re.compile(r"0|-?[1-9][0-9]*")


def _code(v: Any) -> int:
    if v is None:
        return NULL
    if v is True:
        return TRUE
    if v is False:
        return FALSE
    if isinstance(v, int):
        return INT if -EXACT <= v <= EXACT else HUGE
    if isinstance(v, float):
        return FLOAT if math.isfinite(v) else HUGE
    if isinstance(v, str):
        return TEXT
    return OTHER


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _exact(v: Any) -> bool:
    """A filter's number is exact in float64."""
    return not isinstance(v, int) or -EXACT <= v <= EXACT


@dataclass
class _Parts:
    """One key's values in a list of metadata dicts, before they become a column."""

    rows: list[int] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    num_rows: list[int] = field(default_factory=list)
    nums: list[float] = field(default_factory=list)
    text_rows: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


def _encode(metas: Sequence[Mapping[str, Any]]) -> dict[str, _Parts]:
    out: dict[str, _Parts] = {}
    for row, meta in enumerate(metas):
        for key, v in meta.items():
            p = out.get(key)
            if p is None:
                p = out[key] = _Parts()
            c = _code(v)
            p.rows.append(row)
            p.codes.append(c)
            if c == INT or c == FLOAT:
                p.num_rows.append(row)
                p.nums.append(float(v))
            elif c == TEXT:
                p.text_rows.append(row)
                p.texts.append(v)
    return out


class _Column:
    """One key: ``code`` (int8, a type per item), ``num`` (float64, NaN where the
    value is no number; None when the key holds none), ``rank`` (int32 into ``texts``,
    -1 where the value is no text; None when the key holds none)."""

    __slots__ = ("code", "num", "rank", "texts")

    def __init__(self, code, num=None, rank=None, texts=None):
        self.code: np.ndarray = code
        self.num: np.ndarray | None = num
        self.rank: np.ndarray | None = rank
        self.texts: list[str] = texts if texts is not None else []

    @classmethod
    def of(cls, p: _Parts, n: int) -> _Column:
        code = np.zeros(n, np.int8)
        code[p.rows] = p.codes
        col = cls(code)
        if p.nums:
            col.num = np.full(n, np.nan)
            col.num[p.num_rows] = p.nums
        if p.texts:
            col.texts = sorted(set(p.texts))
            where = {t: i for i, t in enumerate(col.texts)}
            col.rank = np.full(n, -1, np.int32)
            col.rank[p.text_rows] = [where[t] for t in p.texts]
        return col

    def take(self, index: np.ndarray) -> _Column:
        num = self.num[index] if self.num is not None else None
        rank = self.rank[index] if self.rank is not None else None
        return _Column(self.code[index], num, rank, self.texts)

    def nbytes(self) -> int:
        arrays = (self.code, self.num, self.rank)
        return sum(a.nbytes for a in arrays if a is not None) + sum(
            sys.getsizeof(t) + 8 for t in self.texts
        )


def _empty(n: int) -> _Column:
    return _Column(np.zeros(n, np.int8))


def _merged_texts(old: list[str], new: list[str]) -> tuple[list[str], np.ndarray | None]:
    """``old`` with the texts of ``new`` it lacks (both sorted, distinct), and where
    each old rank goes (None: nowhere else, nothing was added)."""
    added = [t for t in new if not _holds(old, t)]
    if not added:
        return old, None
    # old rank i moves up by the added texts that sort before old[i]
    points = np.array([bisect_left(old, t) for t in added], np.int64)
    at = np.arange(len(old), dtype=np.int64)
    remap = at + np.searchsorted(points, at, side="right")
    merged = old + added
    merged.sort()  # two sorted runs: a linear merge
    return merged, remap


def _holds(texts: list[str], t: str) -> bool:
    i = bisect_left(texts, t)
    return i < len(texts) and texts[i] == t


def _rerank(rank: np.ndarray, remap: np.ndarray | None) -> np.ndarray:
    """Ranks moved by ``remap`` (-1, no text, stays -1)."""
    if remap is None:
        return rank
    return np.append(remap, -1).astype(np.int32)[rank]


def _no_texts(n: int) -> np.ndarray:
    return np.full(n, -1, np.int32)


def _joined(a: _Column, b: _Column) -> _Column:
    """The rows of ``a`` then those of ``b``, one column."""
    code = np.concatenate([a.code, b.code])
    num = None
    if a.num is not None or b.num is not None:
        parts = [c.num if c.num is not None else np.full(len(c.code), np.nan) for c in (a, b)]
        num = np.concatenate(parts)
    rank, texts = None, a.texts
    if a.rank is not None or b.rank is not None:
        texts, remap = _merged_texts(a.texts, b.texts)
        rank_a = _rerank(a.rank, remap) if a.rank is not None else _no_texts(len(a.code))
        rank_b = _no_texts(len(b.code))
        if b.rank is not None:  # b's own texts, placed in the merged list
            where = np.array([bisect_left(texts, t) for t in b.texts], np.int64)
            rank_b = _rerank(b.rank, where)
        rank = np.concatenate([rank_a, rank_b])
    return _Column(code, num, rank, texts)


class FieldIndex:
    """The metadata of a set of items, column by column (module docstring)."""

    def __init__(self, ids: np.ndarray, columns: dict[str, _Column]):
        self.ids = ids  # item ids, ascending
        self._cols = columns

    @classmethod
    def build(cls, items: Iterable[tuple[int, Mapping[str, Any]]]) -> FieldIndex:
        """From (item id, metadata) pairs, in any order."""
        pairs = sorted(((int(i), m) for i, m in items), key=lambda p: p[0])
        return cls._of([p[0] for p in pairs], [p[1] for p in pairs])

    @classmethod
    def _of(cls, ids: list[int], metas: list[Mapping[str, Any]]) -> FieldIndex:
        """From ids in ascending order and their metadata."""
        n = len(ids)
        cols = {k: _Column.of(p, n) for k, p in _encode(metas).items()}
        return cls(np.array(ids, np.int64), cols)

    def __len__(self) -> int:
        return len(self.ids)

    def keys(self) -> list[str]:
        return sorted(self._cols)

    def nbytes(self) -> int:
        """The memory the index holds, about (its arrays and its distinct texts)."""
        return self.ids.nbytes + sum(c.nbytes() for c in self._cols.values())

    # -- catching up ------------------------------------------------------------------
    def update(self, ids: Iterable[int], metadata: Mapping[int, Mapping[str, Any]]) -> None:
        """Catch up: the items ``ids`` changed; ``metadata`` holds those that still
        exist (an id missing from it was deleted)."""
        touched = np.unique(np.fromiter((int(i) for i in ids), np.int64))
        if not len(touched):
            return
        keep = ~np.isin(self.ids, touched)
        new_ids = [int(i) for i in touched if int(i) in metadata]
        added = FieldIndex._of(new_ids, [metadata[i] for i in new_ids])
        n_kept = int(keep.sum())
        cols = {}
        for key in set(self._cols) | set(added._cols):
            old = self._cols[key].take(keep) if key in self._cols else _empty(n_kept)
            new = added._cols.get(key) or _empty(len(new_ids))
            col = _joined(old, new)
            if col.code.any():  # a key no item holds any more goes
                cols[key] = col
        ids_now = np.concatenate([self.ids[keep], added.ids])
        if len(ids_now) > 1 and not (ids_now[1:] > ids_now[:-1]).all():
            order = np.argsort(ids_now, kind="stable")
            ids_now = ids_now[order]
            cols = {k: c.take(order) for k, c in cols.items()}
        self.ids, self._cols = ids_now, cols
        for col in self._cols.values():
            _forget_unused_texts(col)

    # -- answering a filter -------------------------------------------------------------
    def evaluate(self, node: Node) -> np.ndarray | None:
        """The ids (ascending) of the items the filter matches, as the database would
        answer; None where this index cannot be exact (module docstring)."""
        mask = self._mask(node)
        return None if mask is None else self.ids[mask]

    def _mask(self, node: Node) -> np.ndarray | None:
        if isinstance(node, Group):
            masks = []
            for part in node.parts:
                m = self._mask(part)
                if m is None:
                    return None
                masks.append(m)
            join = np.logical_and if node.op == "and" else np.logical_or
            return join.reduce(masks)
        col = self._cols.get(node.key) or _empty(len(self.ids))
        return _condition(col, node)


def _forget_unused_texts(col: _Column) -> None:
    """Drop the distinct texts no item holds any more, once they are many."""
    if col.rank is None or len(col.texts) < 1024:
        return
    used = np.unique(col.rank[col.rank >= 0])
    if len(col.texts) < 2 * len(used):
        return
    remap = np.full(len(col.texts), -1, np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    col.rank = _rerank(col.rank, remap)
    col.texts = [col.texts[int(i)] for i in used]


def _condition(col: _Column, c: Cond) -> np.ndarray | None:
    op, v = c.op, c.value
    if op == "exists":
        present = col.code > NULL
        return present if v else ~present
    if op == "text":
        return _as_text(col, v)
    if op == "contains":
        if col.rank is None:
            return np.zeros(len(col.code), bool)
        lut = np.array([v in t for t in col.texts] + [False])
        return lut[col.rank]
    if op in ("eq", "ne"):
        m = _equal(col, v)
        return m if m is None or op == "eq" else ~m
    if op in ("in", "nin"):
        m = _one_of(col, v)
        return m if m is None or op == "in" else ~m
    if _is_number(v):
        return _compare_number(col, op, v)
    return _compare_text(col, op, v)


def _numbers(col: _Column, values: Sequence[Any]) -> np.ndarray | None:
    """The column's numbers where comparing them with ``values`` is exact in float64
    (NaN where an item holds no number); None where it is not."""
    if not all(_exact(v) for v in values) or (col.code == HUGE).any():
        return None
    return col.num if col.num is not None else np.full(len(col.code), np.nan)


def _equal(col: _Column, v: Any) -> np.ndarray | None:
    if isinstance(v, bool):
        return col.code == (TRUE if v else FALSE)
    if _is_number(v):
        num = _numbers(col, [v])
        return None if num is None else num == float(v)
    return _text_rank_in(col, [v])


def _text_rank_in(col: _Column, texts: Sequence[str]) -> np.ndarray:
    """The items whose value is one of ``texts``."""
    if col.rank is None:
        return np.zeros(len(col.code), bool)
    found = []
    for t in texts:
        i = bisect_left(col.texts, t)
        if i < len(col.texts) and col.texts[i] == t:
            found.append(i)
    if len(found) == 1:
        return col.rank == found[0]
    return np.isin(col.rank, np.array(found, np.int32))


def _one_of(col: _Column, values: Sequence[Any]) -> np.ndarray | None:
    m = np.zeros(len(col.code), bool)
    numbers = [float(v) for v in values if _is_number(v)]
    if numbers:
        num = _numbers(col, [v for v in values if _is_number(v)])
        if num is None:
            return None
        m |= np.isin(num, np.array(numbers))
    texts = [v for v in values if isinstance(v, str)]
    if texts:
        m |= _text_rank_in(col, texts)
    for b in {v for v in values if isinstance(v, bool)}:
        m |= col.code == (TRUE if b else FALSE)
    return m


def _compare_number(col: _Column, op: str, v: float) -> np.ndarray | None:
    num = _numbers(col, [v])
    if num is None:
        return None
    x = float(v)
    if op == "gt":
        return num > x
    if op == "gte":
        return num >= x
    if op == "lt":
        return num < x
    return num <= x


def _compare_text(col: _Column, op: str, v: str) -> np.ndarray:
    if col.rank is None:
        return np.zeros(len(col.code), bool)
    texts, rank = col.texts, col.rank
    if op == "gt":
        return rank >= bisect_right(texts, v)
    if op == "gte":
        return rank >= bisect_left(texts, v)
    below = bisect_left(texts, v) if op == "lt" else bisect_right(texts, v)
    return (rank >= 0) & (rank < below)


def _as_text(col: _Column, v: str) -> np.ndarray | None:
    """The legacy key=value filter: the value as SQLite's CAST(... AS TEXT) writes it
    equals ``v`` (true and false as 1 and 0). None where the key holds a value whose
    text the database writes its own way (a float, a huge integer, an object)."""
    if np.isin(col.code, (FLOAT, HUGE, OTHER)).any():
        return None
    m = _text_rank_in(col, [v])
    if v in ("1", "0"):
        m |= col.code == (TRUE if v == "1" else FALSE)
    if _INT_TEXT.fullmatch(v) and col.num is not None and -EXACT <= int(v) <= EXACT:
        m |= col.num == float(int(v))
    return m
