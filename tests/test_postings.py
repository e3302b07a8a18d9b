"""The lexical index's sparse matrices (``indexer.postings``) against scipy's, and the
search path's imports: a search process loads neither scipy nor a build's libraries."""

from __future__ import annotations

import subprocess
import sys

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


def test_a_search_process_never_imports_scipy_or_a_builds_libraries(tmp_path):
    """A saved lexical index is loaded and scored with scipy unimportable; the CLI and
    that search load neither tqdm nor ftfy (a build's progress bars and text repair),
    nor the training libraries."""
    from indexer.lexical import LexicalIndex

    docs = [(1, "김치", "김치: 유산균 풍부"), (2, "두부", "두부: 단백질")]
    (tmp_path / "lexical.npz").write_bytes(LexicalIndex.build(docs).to_bytes())
    code = (
        "import sys\n"
        "sys.modules['scipy'] = None\n"
        "import search.cli\n"
        "from indexer.lexical import LexicalIndex\n"
        "idx = LexicalIndex.load(__import__('pathlib').Path('lexical.npz'))\n"
        "ids, scores = idx.score('김치')\n"
        "assert ids.tolist() == [1], ids\n"
        "loaded = [m for m in ('tqdm', 'ftfy', 'torch', 'sentence_transformers') "
        "if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
