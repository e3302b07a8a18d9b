"""From nearest-neighbour lists to mined pairs, a block of rows at a time: the step
that mining's local loop (``indexer.mining``) and its Ray tasks (``indexer.cluster``)
share, so that both find the same pairs (pure: arrays in, arrays out)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# A search of rows start..stop-1: each row's (k+1)-best (scores, positions), best first.
Neighbours = Callable[[int, int], tuple[np.ndarray, np.ndarray]]


def keep(rows_i: np.ndarray, nbr: np.ndarray, sc: np.ndarray, top_k: int, threshold: float):
    """From (k+1)-neighbour lists: drop self, keep the first top_k, apply the threshold."""
    not_self = nbr != rows_i[:, None]
    # position among the non-self neighbours, to cut at top_k like the reference does
    rank = np.cumsum(not_self, axis=1)
    mask = not_self & (rank <= top_k) & (sc >= threshold) & (nbr >= 0)
    r, c = np.nonzero(mask)
    return rows_i[r], nbr[r, c], sc[r, c]


def search_rows(
    neighbours: Neighbours,
    start: int,
    stop: int,
    step: int,
    top_k: int,
    threshold: float,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The kept (rows, neighbours, scores) of rows start..stop-1, searched ``step``
    rows at a time by ``neighbours``; ``progress`` hears of each step's rows."""
    rows, cols, scores = [], [], []
    for a in range(start, stop, step):
        b = min(stop, a + step)
        sc, nbr = neighbours(a, b)
        i, j, v = keep(np.arange(a, b), nbr, sc, top_k, threshold)
        rows.append(i)
        cols.append(j)
        scores.append(v)
        if progress:
            progress(b - a)
    return rows, cols, scores
