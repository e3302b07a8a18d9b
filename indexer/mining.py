"""Paraphrase mining: every pair (a, b) with cosine >= threshold where either item has
the other among its top-k nearest neighbours (sentence-transformers'
``paraphrase_mining_embeddings`` semantics), each pair once, best first.

The maths is pure (arrays in, arrays out); ``run_mining_job`` adds the job records
(``storage.Jobs``, reached through the ``FoodIndex``).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from .ann import AnnIndex, ivf_nlist
from .errors import BadInputError, FoodvecError, NotFoundError
from .filters import filter_node

if TYPE_CHECKING:
    from .home import FoodIndex

# A job keeps at most this many pairs unless told otherwise (the best ones; the count
# left out is recorded): ten unbounded jobs at threshold -1 once stored 3.4 million
# pairs on 5,234 items and grew the database twentyfold.
DEFAULT_MAX_PAIRS = 1_000_000
# Above this many items, "auto" mines with an approximate (IVF) kNN.
EXACT_MAX = 20_000
# Rows searched per exact step (FAISS blocks the database side itself).
EXACT_STEP = 4096
IVF_STEP = 8192


@dataclass
class Pairs:
    """Mined pairs as positions into the mined vectors (a < b), best first."""

    a: np.ndarray
    b: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.score)


def _finalize(rows: list[np.ndarray], cols: list[np.ndarray], scores: list[np.ndarray]) -> Pairs:
    if not rows or not sum(len(r) for r in rows):  # no pair reached the threshold
        e = np.zeros(0, np.int64)
        return Pairs(e, e, np.zeros(0, np.float32))
    i = np.concatenate(rows).astype(np.int64)
    j = np.concatenate(cols).astype(np.int64)
    s = np.concatenate(scores).astype(np.float32)
    a, b = np.minimum(i, j), np.maximum(i, j)
    key = a * (int(b.max()) + 1) + b
    # one entry per pair: the highest score (the two directions agree up to rounding)
    order = np.lexsort((-s, key))
    key, a, b, s = key[order], a[order], b[order], s[order]
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    a, b, s = a[first], b[first], s[first]
    best = np.lexsort((b, a, -s))
    return Pairs(a[best], b[best], s[best])


def _keep(rows_i: np.ndarray, nbr: np.ndarray, sc: np.ndarray, top_k: int, threshold: float):
    """From (k+1)-neighbour lists: drop self, keep the first top_k, apply the threshold."""
    not_self = nbr != rows_i[:, None]
    # position among the non-self neighbours, to cut at top_k like the reference does
    rank = np.cumsum(not_self, axis=1)
    mask = not_self & (rank <= top_k) & (sc >= threshold) & (nbr >= 0)
    r, c = np.nonzero(mask)
    return rows_i[r], nbr[r, c], sc[r, c]


def _mine(
    n: int,
    step: int,
    neighbours: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    top_k: int,
    threshold: float,
    progress: Callable[[int], None] | None,
) -> Pairs:
    """Collect pairs from ``neighbours(start, stop)``: each row's (k+1)-best scores and
    positions, best first, for rows start..stop-1."""
    rows, cols, scores = [], [], []
    for start in range(0, n, step):
        stop = min(n, start + step)
        sc, nbr = neighbours(start, stop)
        i, j, v = _keep(np.arange(start, stop), nbr, sc, top_k, threshold)
        rows.append(i)
        cols.append(j)
        scores.append(v)
        if progress:
            progress(stop - start)
    return _finalize(rows, cols, scores)


def _on_ray(
    ray: str, index, vecs: np.ndarray, step: int, kk: int, top_k: int, threshold: float, progress
) -> Pairs:
    """The same search steps as ``_mine``, in Ray tasks over blocks of rows."""
    from . import cluster

    return _finalize(
        *cluster.mine_blocks(ray, index, vecs, step, kk, top_k, threshold, progress=progress)
    )


def mine_exact(
    vecs: np.ndarray,
    top_k: int = 10,
    threshold: float = 0.9,
    progress: Callable[[int], None] | None = None,
    ray: str | None = None,
) -> Pairs:
    """Exact mining: every row against every row (FAISS flat inner product, which works
    through the rows in blocks, so memory stays bounded whatever the size). ``ray``: a
    Ray cluster address (or ``auto``) to search the blocks on."""
    n, d = vecs.shape
    vecs = np.ascontiguousarray(vecs, dtype=np.float32)
    flat = faiss.IndexFlatIP(d)
    flat.add(vecs)
    kk = min(top_k + 1, n)
    if ray:
        return _on_ray(ray, flat, vecs, EXACT_STEP, kk, top_k, threshold, progress)
    return _mine(n, EXACT_STEP, lambda a, b: flat.search(vecs[a:b], kk), top_k, threshold, progress)


def ivf_params(n: int) -> dict[str, int]:
    nlist = ivf_nlist(n)
    return {"nlist": nlist, "nprobe": min(nlist, 32)}


def mine_ivf(
    vecs: np.ndarray,
    top_k: int = 10,
    threshold: float = 0.9,
    nlist: int | None = None,
    nprobe: int | None = None,
    progress: Callable[[int], None] | None = None,
    ray: str | None = None,
) -> Pairs:
    """Approximate mining: an IVF index built for the job (positions as ids), each item
    searched for its top_k + 1 neighbours in ``nprobe`` of ``nlist`` cells."""
    n, d = vecs.shape
    vecs = np.ascontiguousarray(vecs, dtype=np.float32)
    p = ivf_params(n)
    ann = AnnIndex.empty("ivf", d, train=vecs, nlist=nlist or p["nlist"])
    ann.add(np.arange(n, dtype=np.int64), vecs)
    ann.index.nprobe = nprobe or p["nprobe"]
    kk = min(top_k + 1, n)
    if ray:  # the index travels with its nprobe
        return _on_ray(ray, ann.index, vecs, IVF_STEP, kk, top_k, threshold, progress)
    return _mine(
        n, IVF_STEP, lambda a, b: ann.index.search(vecs[a:b], kk), top_k, threshold, progress
    )


def clusters(pairs: Pairs) -> list[list[int]]:
    """Connected components of the pair graph (union-find), largest first."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(pairs.a.tolist(), pairs.b.tolist(), strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for x in parent:
        groups.setdefault(find(x), []).append(x)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: (-len(g), g[0]))


# -- jobs ------------------------------------------------------------------------------


@dataclass
class MineResult:
    job: int
    mode: str
    items: int
    pairs: int
    left_out: int
    seconds: float
    params: dict[str, Any]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_params(threshold: float, top_k: int, mode: str, max_pairs: int) -> None:
    if not -1.0 <= threshold <= 1.0:
        raise BadInputError(f"threshold must be between -1 and 1, not {threshold}")
    if top_k < 1:
        raise BadInputError(f"top-k must be at least 1, not {top_k}")
    if mode not in ("auto", "exact", "approximate"):
        raise BadInputError(f"mode must be auto, exact or approximate, not {mode!r}")
    if max_pairs < 1:
        raise BadInputError(f"max-pairs must be at least 1, not {max_pairs}")


EMPTY = "the index is empty: build it first (foodvec build FILE)"


def start_job(idx: FoodIndex, params: dict[str, Any]) -> int:
    """Record a new mining job as running (``run_mining_job`` then does the work)."""
    gen, model = idx.state()
    return idx.jobs.start(params, model, gen)


def get_job(idx: FoodIndex, job_id: int) -> dict[str, Any] | None:
    found = list_jobs(idx, job_id)
    return found[0] if found else None


def run_mining_job(
    idx: FoodIndex,
    threshold: float = 0.9,
    top_k: int = 10,
    mode: str = "auto",
    filters: dict[str, str] | None = None,
    max_pairs: int | None = None,
    progress: bool = False,
    job_id: int | None = None,
    where: dict[str, Any] | None = None,
    ray: str | None = None,
) -> MineResult:
    """Mine the current index, recording the job and its pairs in the database. A job
    is marked done only when every pair is stored; a failed or interrupted one keeps
    no pairs. ``ray``: search on a Ray cluster (an address, or ``auto``); the pairs
    are the same."""
    max_pairs = DEFAULT_MAX_PAIRS if max_pairs is None else max_pairs
    _check_params(threshold, top_k, mode, max_pairs)
    node = filter_node(filters, where)
    gen, model = idx.state()
    params = {
        "threshold": threshold,
        "top_k": top_k,
        "mode": mode,
        "filters": filters or {},
        "max_pairs": max_pairs,
    }
    if where is not None:
        params["where"] = where
    if job_id is None:
        if model is None:
            raise FoodvecError(EMPTY)
        job_id = idx.jobs.start(params, model, gen)
    t0 = time.perf_counter()
    try:
        if model is None:
            raise FoodvecError(EMPTY)
        ids, vecs = idx.vectors(idx.filtered_ids(node) if node is not None else None)
        chosen, pairs = _mine_vectors(vecs, top_k, threshold, mode, params, progress, ray)
        left_out = max(0, len(pairs) - max_pairs)
        if left_out:
            pairs = Pairs(pairs.a[:max_pairs], pairs.b[:max_pairs], pairs.score[:max_pairs])
        idx.jobs.add_pairs(job_id, ids[pairs.a], ids[pairs.b], pairs.score)
        seconds = time.perf_counter() - t0
        idx.jobs.finish(
            job_id,
            "done",
            seconds,
            params,
            mode=chosen,
            items=len(ids),
            pairs=len(pairs),
            left_out=left_out,
        )
        return MineResult(job_id, chosen, len(ids), len(pairs), left_out, round(seconds, 3), params)
    except BaseException as exc:
        idx.jobs.drop_pairs(job_id)
        interrupted = isinstance(exc, KeyboardInterrupt)
        idx.jobs.finish(
            job_id,
            "interrupted" if interrupted else "failed",
            time.perf_counter() - t0,
            params,
            error="interrupted by the user" if interrupted else f"{type(exc).__name__}: {exc}",
        )
        raise


def _mine_vectors(
    vecs: np.ndarray,
    top_k: int,
    threshold: float,
    mode: str,
    params: dict,
    progress: bool,
    ray: str | None = None,
) -> tuple[str, Pairs]:
    """(the mode used, the pairs) for one matrix of vectors; records IVF parameters."""
    n = len(vecs)
    chosen = mode if mode != "auto" else ("exact" if n <= EXACT_MAX else "approximate")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=n, unit=" items", desc=f"mining ({chosen})", file=sys.stderr, mininterval=0.5
        )
    tick = bar.update if bar else None
    try:
        if n < 2:
            return chosen, _finalize([], [], [])
        if chosen == "exact":
            return chosen, mine_exact(vecs, top_k, threshold, progress=tick, ray=ray)
        params["ivf"] = ivf_params(n)
        return chosen, mine_ivf(vecs, top_k, threshold, progress=tick, ray=ray, **params["ivf"])
    finally:
        if bar:
            bar.close()


def delete_job(idx: FoodIndex, job_id: int) -> None:
    """Delete a job and its pairs; a job still running in a live process is refused."""
    job = get_job(idx, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    if job["status"] == "running":
        raise BadInputError(f"job {job_id} is still running; delete it when it has ended")
    idx.jobs.delete(job_id)


def list_jobs(idx: FoodIndex, job_id: int | None = None) -> list[dict[str, Any]]:
    """All jobs (or the one given), newest first. A 'running' job whose process is gone
    on this host is marked interrupted: a killed job is never shown as running or done."""
    host = socket.gethostname()
    out = []
    for job in idx.jobs.rows(job_id):
        if job["status"] == "running" and job["host"] == host and not _pid_alive(job["pid"]):
            idx.jobs.finish(
                job["id"],
                "interrupted",
                job["seconds"] or 0.0,
                job["params"],
                error="the process ended before the job finished",
            )
            idx.jobs.drop_pairs(job["id"])  # what it stored before it died is partial
            job["status"] = "interrupted"
        out.append(job)
    return out


def job_pairs(
    idx: FoodIndex, job_id: int, of: str | None = None, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """A job's pairs with ids and texts, best first; with ``of``, only that item's."""
    of_item = None
    if of is not None:
        item = idx.item(of)
        if item is None:
            raise NotFoundError(f"no item with id {of!r}")
        of_item = item.id
    return idx.jobs.pairs(job_id, of_item, limit, offset)


def latest_done_job(idx: FoodIndex) -> int | None:
    return idx.jobs.latest_done()


def job_clusters(idx: FoodIndex, job_id: int) -> list[list[dict[str, str]]]:
    a, b, score = idx.jobs.pair_ids(job_id)
    if not len(a):
        return []
    groups = clusters(Pairs(a, b, score))
    items = idx.items({i for g in groups for i in g})
    return [
        [{"id": items[i].ext_id, "text": items[i].text} for i in g if i in items] for g in groups
    ]
