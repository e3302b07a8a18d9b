"""The lexical index's sparse matrices (``indexer.postings``) against scipy's."""

from __future__ import annotations

import numpy as np
import pytest

from indexer import postings

sparse = pytest.importorskip("scipy.sparse")


def _random_rows(rng: np.random.Generator, n_rows: int, n_cols: int):
    cols, vals = [], []
    for _ in range(n_rows):
        k = int(rng.integers(0, min(n_cols, 6) + 1))
        c = rng.choice(n_cols, size=k, replace=False)  # distinct, unsorted
        cols.append(c.astype(np.int64))
        vals.append(rng.integers(1, 5, size=k).astype(np.float32))
    return cols, vals


def _scipy(cols, vals, n_cols):
    indptr = np.concatenate([[0], np.cumsum([len(c) for c in cols])]).astype(np.int64)
    data = np.concatenate(vals) if vals else np.zeros(0, np.float32)
    idx = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    m = sparse.csr_matrix((data, idx, indptr), shape=(len(cols), n_cols))
    m.sort_indices()
    return m


def _same(ours: postings.Compressed, theirs) -> None:
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours.indptr, theirs.indptr)
    np.testing.assert_array_equal(ours.indices, theirs.indices)
    np.testing.assert_array_equal(ours.data, theirs.data)


@pytest.mark.parametrize("seed", range(8))
def test_build_take_stack_and_transpose_match_scipy(seed):
    rng = np.random.default_rng(seed)
    n_cols = int(rng.integers(1, 40))
    cols, vals = _random_rows(rng, int(rng.integers(0, 30)), n_cols)
    ours, theirs = postings.from_rows(cols, vals, n_cols), _scipy(cols, vals, n_cols)
    _same(ours, theirs)
    assert postings.canonical(ours)
    _same(postings.columns(ours), theirs.tocsc())

    rows = rng.integers(0, max(ours.shape[0], 1), size=int(rng.integers(0, 12)))
    if ours.shape[0]:
        _same(postings.take_rows(ours, rows), theirs[rows])

    more_cols, more_vals = _random_rows(rng, int(rng.integers(0, 10)), n_cols + 5)
    wide = n_cols + 5
    bottom = postings.from_rows(more_cols, more_vals, wide)
    stacked = postings.stack(ours, bottom, wide)
    theirs.resize((theirs.shape[0], wide))
    _same(stacked, sparse.vstack([theirs, _scipy(more_cols, more_vals, wide)], format="csr"))


def test_canonical_refuses_unsorted_or_repeated_columns_within_a_row():
    ok = postings.Compressed(
        np.array([0, 2, 4]), np.array([1, 3, 0, 3]), np.ones(4, np.float32), (2, 4)
    )
    assert postings.canonical(ok)  # 3 then 0 crosses a row boundary: allowed
    for bad in ([3, 1, 0, 3], [1, 1, 0, 3], [1, 3, 3, 3]):
        m = postings.Compressed(np.array([0, 2, 4]), np.array(bad), np.ones(4, np.float32), (2, 4))
        assert not postings.canonical(m), bad
