"""Compressed sparse matrices in plain numpy arrays, for the lexical index.

``Compressed`` is the layout scipy calls CSR (``indptr`` over rows, ``indices`` the
columns) or, transposed, CSC (``indptr`` over columns, ``indices`` the rows). The
lexical index needs only a few operations on them (build from rows, take rows, stack,
transpose, check canonical order), and numpy alone does each in a few vectorised
steps: a search process that loads the index never imports scipy (about 0.2 s of a
cold start).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Compressed:
    """A sparse matrix of ``shape`` (rows, columns). ``by_row``: ``indptr`` runs over
    rows and ``indices`` are columns (CSR); else over columns, ``indices`` rows (CSC)."""

    indptr: np.ndarray  # int64
    indices: np.ndarray  # int64
    data: np.ndarray  # float32
    shape: tuple[int, int]
    by_row: bool = True

    @property
    def outer(self) -> int:
        """How many rows (CSR) or columns (CSC) ``indptr`` runs over."""
        return len(self.indptr) - 1

    def line(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, data) of row ``n`` (CSR) or column ``n`` (CSC)."""
        lo, hi = self.indptr[n], self.indptr[n + 1]
        return self.indices[lo:hi], self.data[lo:hi]


def empty(n_cols: int) -> Compressed:
    return Compressed(
        np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), (0, n_cols)
    )


def from_rows(cols: Sequence[np.ndarray], values: Sequence[np.ndarray], n_cols: int) -> Compressed:
    """CSR of rows given as (column ids, values) each, columns sorted within each row
    (each row's columns are distinct)."""
    if not cols:
        return empty(n_cols)
    indptr = np.zeros(len(cols) + 1, np.int64)
    np.cumsum([len(c) for c in cols], out=indptr[1:])
    m = Compressed(
        indptr,
        np.concatenate(cols).astype(np.int64),
        np.concatenate(values).astype(np.float32),
        (len(cols), n_cols),
    )
    return sort_lines(m)


def _line_of_each(m: Compressed) -> np.ndarray:
    """The row (CSR) or column (CSC) of each stored value."""
    return np.repeat(np.arange(m.outer, dtype=np.int64), np.diff(m.indptr))


def sort_lines(m: Compressed) -> Compressed:
    """The same matrix with indices sorted within each row (CSR) or column (CSC)."""
    order = np.lexsort((m.indices, _line_of_each(m)))
    return Compressed(m.indptr, m.indices[order], m.data[order], m.shape, m.by_row)


def canonical(m: Compressed) -> bool:
    """Whether indices are strictly increasing within each line (sorted, no repeats)."""
    if len(m.indices) < 2:
        return True
    step = np.diff(m.indices)
    boundary = np.zeros(len(step), bool)
    starts = m.indptr[1:-1]
    starts = starts[(starts > 0) & (starts < len(m.indices))]
    boundary[starts - 1] = True
    return bool((step[~boundary] > 0).all())


def take_rows(m: Compressed, rows: np.ndarray) -> Compressed:
    """The CSR of the given rows of a CSR, in that order."""
    rows = np.asarray(rows, np.int64)
    lens = m.indptr[rows + 1] - m.indptr[rows]
    indptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lens, out=indptr[1:])
    at = np.repeat(m.indptr[rows] - indptr[:-1], lens) + np.arange(indptr[-1], dtype=np.int64)
    return Compressed(indptr, m.indices[at], m.data[at], (len(rows), m.shape[1]))


def stack(top: Compressed, bottom: Compressed, n_cols: int) -> Compressed:
    """The rows of two CSRs, one above the other, with ``n_cols`` columns."""
    indptr = np.concatenate([top.indptr, bottom.indptr[1:] + top.indptr[-1]])
    return Compressed(
        indptr,
        np.concatenate([top.indices, bottom.indices]),
        np.concatenate([top.data, bottom.data]),
        (top.shape[0] + bottom.shape[0], n_cols),
    )


def columns(m: Compressed) -> Compressed:
    """The CSC of a CSR (rows sorted within each column)."""
    n_rows, n_cols = m.shape
    order = np.argsort(m.indices, kind="stable")  # stable: rows stay in order
    indptr = np.zeros(n_cols + 1, np.int64)
    np.cumsum(np.bincount(m.indices, minlength=n_cols), out=indptr[1:])
    rows = _line_of_each(m)
    return Compressed(indptr, rows[order], m.data[order], (n_rows, n_cols), by_row=False)
