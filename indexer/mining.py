"""Paraphrase mining: every pair (a, b) with cosine >= threshold where either item has
the other among its top-k nearest neighbours (sentence-transformers'
``paraphrase_mining_embeddings`` semantics), each pair once, best first.

The maths is pure (arrays in, arrays out); ``MiningJobs`` runs it as recorded jobs,
built from a home's store (the job records, ``storage.Jobs``, and the items) and its
derived indexes (the vectors and the filtered ids).
"""

from __future__ import annotations

import heapq
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import faiss
import numpy as np

from .ann import AnnIndex, ivf_nlist
from .derived import DerivedIndex
from .errors import BadInputError, FoodvecError, NotFoundError
from .filters import filter_node
from .neighbours import Neighbours, search_rows
from .storage import Store
from .terms import item_name, leading_label, name_key

# A job keeps at most this many pairs unless told otherwise (the best ones; the count
# left out is recorded): ten unbounded jobs at threshold -1 once stored 3.4 million
# pairs on 5,234 items and grew the database twentyfold.
DEFAULT_MAX_PAIRS = 1_000_000
# Above this many items, "auto" mines with an approximate (IVF) kNN.
EXACT_MAX = 20_000
# Rows searched per exact step (FAISS blocks the database side itself).
EXACT_STEP = 4096
IVF_STEP = 8192
# A page of pairs up to this many distinct items reads their names one by one; more
# (a whole job) reads the job's items in batches.
LOOKUPS_PER_PAGE = 2000


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


def _mine(
    n: int,
    step: int,
    neighbours: Neighbours,
    top_k: int,
    threshold: float,
    progress: Callable[[int], None] | None,
) -> Pairs:
    """Collect pairs from ``neighbours(start, stop)``: each row's (k+1)-best scores and
    positions, best first, for rows start..stop-1."""
    return _finalize(*search_rows(neighbours, 0, n, step, top_k, threshold, progress))


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


@dataclass
class Cluster:
    """A group of mined items, every two of them with a cosine of at least ``floor``.

    ``least``: its least similar pair (a, b, score), a < b."""

    members: list[int]
    least: tuple[int, int, float]

    def __len__(self) -> int:
        return len(self.members)


# (score, a, b): the least similar pair between two groups, or inside one.
_Least = tuple[float, int, int]


def clusters(
    pairs: Pairs, floor: float | None = None, vecs: np.ndarray | None = None
) -> list[Cluster]:
    """Complete-linkage clusters of the mined items, largest first.

    Every two members of a cluster have a cosine of at least ``floor`` (default: the
    lowest pair score, which is the job's threshold or above), so a cluster is a group
    of mutual near-duplicates, never a chain (a ~ b ~ c with a and c far apart). Groups
    joined by at least one mined pair are merged, the closest first, while the least
    similar pair of the merged group stays at or above ``floor``.

    A pair that was not mined (below the threshold, or outside both items' top-k) is
    read from ``vecs`` (rows are the pairs' positions, unit length) when given, so a
    group larger than top-k still forms; without ``vecs`` it counts as below ``floor``,
    and every two members of a cluster are then a mined pair. An item left with no
    partner forms no cluster (its pairs are still pairs).
    """
    if not len(pairs):
        return []
    floor = float(pairs.score.min()) if floor is None else float(floor)
    mined: dict[tuple[int, int], float] = {}
    for a, b, s in zip(pairs.a.tolist(), pairs.b.tolist(), pairs.score.tolist(), strict=True):
        key = (a, b) if a < b else (b, a)
        mined[key] = max(s, mined.get(key, -np.inf))
    members: dict[int, list[int]] = {}  # a group's id is its first item
    least: dict[int, _Least] = {}
    # link[g][h]: the least similar pair between groups g and h, for groups joined by
    # a mined pair; below ``floor`` it only marks the two as never to be merged.
    link: dict[int, dict[int, _Least]] = {}
    for (a, b), s in mined.items():
        members.setdefault(a, [a])
        members.setdefault(b, [b])
        link.setdefault(a, {})[b] = link.setdefault(b, {})[a] = (s, a, b)
    heap = [(-s, a, b) for (a, b), s in mined.items() if s >= floor]
    heapq.heapify(heap)

    def between(g: list[int], h: list[int]) -> _Least:
        """The least similar pair between two groups with no mined pair between them."""
        if vecs is None:
            return (-np.inf, min(g[0], h[0]), max(g[0], h[0]))
        sims = vecs[g] @ vecs[h].T
        i, j = np.unravel_index(int(np.argmin(sims)), sims.shape)
        x, y = g[i], h[j]
        return (float(sims[i, j]), min(x, y), max(x, y))

    while heap:
        neg, g, h = heapq.heappop(heap)
        if g not in members or h not in members or link[g].get(h, (None,))[0] != -neg:
            continue  # stale: one side was merged since
        inside = min(least.get(g, (np.inf, g, g)), least.get(h, (np.inf, h, h)), link[g][h])
        mg, mh = members.pop(g), members.pop(h)
        lg, lh = link.pop(g), link.pop(h)
        least.pop(g, None)
        least.pop(h, None)
        m = min(g, h)
        members[m], least[m], link[m] = mg + mh, inside, {}
        for c in (lg.keys() | lh.keys()) - {g, h}:
            lc = link[c]
            lc.pop(g, None)
            lc.pop(h, None)
            x, y = lg.get(c), lh.get(c)
            if (x is not None and x[0] < floor) or (y is not None and y[0] < floor):
                joined = min(z for z in (x, y) if z is not None)  # already too far apart
            else:  # complete linkage: the least similar of the two sides' pairs with c
                x = x if x is not None else between(members[c], mg)
                y = y if y is not None else between(members[c], mh)
                joined = min(x, y)
            link[m][c] = lc[m] = joined
            if joined[0] >= floor:
                heapq.heappush(heap, (-joined[0], min(m, c), max(m, c)))
    out = [
        Cluster(sorted(g), (least[k][1], least[k][2], least[k][0]))
        for k, g in members.items()
        if len(g) > 1
    ]
    return sorted(out, key=lambda c: (-len(c), c.members[0]))


# -- what kind of match a pair is -----------------------------------------------------

SAME_NAME, REWORDED, SAME_PROFILE = "same name", "reworded", "same profile"


@lru_cache(maxsize=1 << 16)
def _keys(name: str | None, text: str) -> tuple[str, str | None, str]:
    """(name key, leading label key, text key) of one item; an item without a name is
    named by its whole text."""
    label = leading_label(text)
    text_key = name_key(text)
    return (name_key(name) if name else text_key, name_key(label) if label else None, text_key)


def match_kind(name_a: str | None, text_a: str, name_b: str | None, text_b: str) -> str:
    """What a mined pair is, so that a person knows what to do with it.

    ``same name``: the two items have the same name and the same text, up to case,
    width, spacing and punctuation (``terms.name_key``): one entry stored twice.
    ``reworded``: the same name, or the same leading label (``두부: ...``), with
    different text: one food described twice. ``same profile``: different names whose
    descriptions are alike: two foods, not a duplicate. An item's name is its ``name``
    metadata or its text's leading label (``terms.item_name``); an item with neither is
    named by its whole text, so two such items are ``same name`` only when their texts
    match.
    """
    ka, la, ta = _keys(name_a, text_a)
    kb, lb, tb = _keys(name_b, text_b)
    if ka == kb or (la is not None and la == lb):
        return SAME_NAME if ta == tb else REWORDED
    return SAME_PROFILE


def group_pairs(pairs: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Pairs grouped by the item they duplicate: (item id, its pairs), the item in the
    most pairs first (ties: the one seen first). A pair goes to whichever of its two
    items comes first, so each pair is shown once; pairs keep the order given."""
    count = Counter(x for p in pairs for x in (p["id_a"], p["id_b"]))
    first: dict[str, int] = {}
    for n, p in enumerate(pairs):
        first.setdefault(p["id_a"], 2 * n)
        first.setdefault(p["id_b"], 2 * n + 1)
    rank = {x: r for r, x in enumerate(sorted(count, key=lambda x: (-count[x], first[x])))}
    groups: dict[str, list[dict[str, Any]]] = {}
    for p in pairs:
        groups.setdefault(min(p["id_a"], p["id_b"], key=rank.__getitem__), []).append(p)
    return sorted(groups.items(), key=lambda g: rank[g[0]])


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


class MiningJobs:
    """The mining jobs of one home: started, run, listed, read back and deleted. Built
    from the home's ``store`` (the job records and the items) and its ``derived``
    indexes (the vectors to mine, the items a filter keeps)."""

    def __init__(self, store: Store, derived: DerivedIndex):
        self._store = store
        self._derived = derived

    def start(self, params: dict[str, Any], limit: int | None = None) -> int:
        """Record a new mining job as running (``run`` with its ``job_id`` then does the
        work). ``limit``: refuse (``BusyError``) when that many jobs already run on this
        machine, checked in the database under the write lock (``Jobs.start``)."""
        gen, model = self._store.state()
        return self._store.jobs.start(params, model, gen, limit=limit)

    def run(
        self,
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
        """Mine the current index, recording the job and its pairs in the database. A
        job is marked done only when every pair is stored; a failed or interrupted one
        keeps no pairs. ``ray``: search on a Ray cluster (an address, or ``auto``); the
        pairs are the same."""
        max_pairs = DEFAULT_MAX_PAIRS if max_pairs is None else max_pairs
        _check_params(threshold, top_k, mode, max_pairs)
        node = filter_node(filters, where)
        gen, model = self._store.state()
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
            job_id = self._store.jobs.start(params, model, gen)
        t0 = time.perf_counter()
        try:
            if model is None:
                raise FoodvecError(EMPTY)
            allowed = self._derived.filtered_ids(node) if node is not None else None
            ids, vecs = self._derived.vectors(allowed)
            chosen, pairs = _mine_vectors(vecs, top_k, threshold, mode, params, progress, ray)
            left_out = max(0, len(pairs) - max_pairs)
            if left_out:
                pairs = Pairs(pairs.a[:max_pairs], pairs.b[:max_pairs], pairs.score[:max_pairs])
            jobs = self._store.jobs
            jobs.add_pairs(job_id, ids[pairs.a], ids[pairs.b], pairs.score)
            seconds = time.perf_counter() - t0
            jobs.finish(
                job_id,
                "done",
                seconds,
                params,
                mode=chosen,
                items=len(ids),
                pairs=len(pairs),
                left_out=left_out,
            )
            return MineResult(
                job_id, chosen, len(ids), len(pairs), left_out, round(seconds, 3), params
            )
        except BaseException as exc:
            self._failed(job_id, exc, time.perf_counter() - t0, params)
            raise

    def _failed(self, job_id: int, exc: BaseException, seconds: float, params: dict) -> None:
        """Record a job that failed or was interrupted; it keeps no pairs."""
        self._store.jobs.drop_pairs(job_id)
        interrupted = isinstance(exc, KeyboardInterrupt)
        self._store.jobs.finish(
            job_id,
            "interrupted" if interrupted else "failed",
            seconds,
            params,
            error="interrupted by the user" if interrupted else f"{type(exc).__name__}: {exc}",
        )

    def rows(self, job_id: int | None = None) -> list[dict[str, Any]]:
        """All jobs (or the one given), newest first. A 'running' job whose process is
        gone on this host is marked interrupted: a killed job is never shown as running
        or done."""
        host = socket.gethostname()
        jobs = self._store.jobs
        out = []
        for job in jobs.rows(job_id):
            if job["status"] == "running" and job["host"] == host and not _pid_alive(job["pid"]):
                jobs.finish(
                    job["id"],
                    "interrupted",
                    job["seconds"] or 0.0,
                    job["params"],
                    error="the process ended before the job finished",
                )
                jobs.drop_pairs(job["id"])  # what it stored before it died is partial
                job["status"] = "interrupted"
            out.append(job)
        return out

    def get(self, job_id: int) -> dict[str, Any] | None:
        found = self.rows(job_id)
        return found[0] if found else None

    def delete(self, job_id: int) -> None:
        """Delete a job and its pairs; a job still running in a live process is refused."""
        job = self.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        if job["status"] == "running":
            raise BadInputError(f"job {job_id} is still running; delete it when it has ended")
        self._store.jobs.delete(job_id)

    def latest_done(self) -> int | None:
        return self._store.jobs.latest_done()

    def pairs(
        self, job_id: int, of: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[dict[str, Any]]:
        """A job's pairs with ids, texts and the kind of match (``match_kind``), best
        first; with ``of``, only that item's."""
        of_item = None
        if of is not None:
            item = self._store.item_by_ext_id(of)
            if item is None:
                raise NotFoundError(f"no item with id {of!r}")
            of_item = item.id
        pairs = self._store.jobs.pairs(job_id, of_item, limit, offset)
        names = self._item_names(job_id, {p[k] for p in pairs for k in ("id_a", "id_b")})
        for p in pairs:
            p["kind"] = match_kind(
                names.get(p["id_a"]), p["text_a"], names.get(p["id_b"]), p["text_b"]
            )
        return pairs

    def _item_names(self, job_id: int, ext_ids: set[str]) -> dict[str, str | None]:
        """The names of the items of a job's pairs (``terms.item_name``): one read per
        item for a page of pairs, one batched read of the job's items for more."""
        if len(ext_ids) <= LOOKUPS_PER_PAGE:
            rows = [r for r in map(self._store.item_by_ext_id, ext_ids) if r is not None]
        else:
            a, b, _ = self._store.jobs.pair_ids(job_id)
            found = self._store.items_by_ids(np.union1d(a, b).tolist())
            rows = [r for r in found.values() if r.ext_id in ext_ids]
        return {r.ext_id: item_name(r.metadata.get("name"), r.text) for r in rows}

    def clusters(self, job_id: int) -> list[dict[str, Any]]:
        """A job's clusters (``clusters``), largest first: each with its size, its least
        similar pair and its members. Every two members are at the job's threshold or
        closer; pairs the job did not keep are read from the stored vectors when the
        home's model is still the job's, else they count as too far apart."""
        a, b, score = self._store.jobs.pair_ids(job_id)
        if not len(a):
            return []
        job = self.get(job_id)
        ids = np.union1d(a, b)  # positions into ids
        vecs = None
        if job is not None and job["model_fp"] == self._store.state()[1]:
            got, v = self._derived.vectors(ids.tolist())
            if len(got) == len(ids):  # no item deleted since the job ran
                vecs = v[np.argsort(got)]  # in the order of ids, which is sorted
        floor = job["params"]["threshold"] if job is not None else None
        pairs = Pairs(np.searchsorted(ids, a), np.searchsorted(ids, b), score)
        found = clusters(pairs, floor, vecs)
        items = self._store.items_by_ids(ids[[i for c in found for i in c.members]].tolist())
        out = []
        for c in found:
            x, y, s = ids[c.least[0]], ids[c.least[1]], c.least[2]
            if not all(i in items for i in (x, y, *ids[c.members])):
                continue  # an item deleted since the job ran
            out.append(
                {
                    "size": len(c),
                    "least_similar": {
                        "id_a": items[x].ext_id,
                        "id_b": items[y].ext_id,
                        "score": round(float(s), 6),
                    },
                    "members": [
                        {"id": items[i].ext_id, "text": items[i].text} for i in ids[c.members]
                    ],
                }
            )
        return out
