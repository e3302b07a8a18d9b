"""The quantized index (ivf-sq8: IVF over 8-bit codes, re-ranked exactly from the stored
vectors) against IVF over the float vectors (ivf, the baseline), on the item vectors of
built homes, in one run.

For each home, its vectors are read through the store opened read-only (SQLite's
immutable mode: nothing is written to the home). 500 items drawn at random are held
out of the index; their vectors are the queries, and their exact top 10 among the rest
comes from matrix products in chunks. Each kind is then built in a process of its own
(``--child``), from a copy of the indexed vectors on disk, so that its memory is its
own: FAISS's serialized size, the process's RSS growth over the build (after
``malloc_trim``) and its peak. One query at a time, as a server searches, at k=10:
p50/p99 and recall@10, the quantized index re-ranking through the home's own path
(``AnnIndex.search`` with the stored vectors read by ``Store.gather_vectors`` in one
read snapshot); then a sweep of nprobe and of the re-rank factor, and a filtered search
(a random fifth of the items as the selector). The memory at 10 million items is
modelled from the per-item bytes of the largest home measured.

    .venv/bin/python -m bench.quantized --home /tmp/u100/home --home /tmp/million-home
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import shutil
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.common import emit, machine, run_measured
from indexer.ann import (
    IVF_NPROBE,
    RERANK_FACTOR,
    SQ8_NPROBE,
    AnnIndex,
    ivf_nlist,
)
from indexer.storage import Store

HELD_OUT = 500
K = 10
BATCH = 20_000
FILTERED_QUERIES = 100
FILTER_SHARE = 0.2


def read_only_store(home: Path) -> Store:
    """The home's SQLite database, opened immutable: read, never written."""
    db = urllib.parse.quote(str((home / "foodvec.db").resolve()))
    return Store.open(f"sqlite:///file:{db}?immutable=1&uri=true")


def home_vectors(home: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """(item ids, vectors, model fingerprint) of every item of the home."""
    store = read_only_store(home)
    try:
        model = store.active_model()
        dim = int(store.model_info(model)["dim"])
        n = store.count()
        ids = np.empty(n, np.int64)
        vecs = np.empty((n, dim), np.float32)
        at = 0
        for got_ids, got in store.vectors_for_items(model, dim):
            ids[at : at + len(got_ids)], vecs[at : at + len(got_ids)] = got_ids, got
            at += len(got_ids)
        return ids[:at], vecs[:at], model
    finally:
        store.close()


def exact_top(queries: np.ndarray, ids: np.ndarray, vecs: np.ndarray, k: int) -> np.ndarray:
    """The ids of each query's exact top k, best first (matrix products in chunks)."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.full((len(queries), k), -1, np.int64)
    for a in range(0, len(ids), 100_000):
        s = np.concatenate([best_s, queries @ vecs[a : a + 100_000].T], axis=1)
        chunk = np.broadcast_to(ids[a : a + 100_000], (len(queries), len(s[0]) - k))
        i = np.concatenate([best_i, chunk], axis=1)
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, 1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return round(sum(hits) / truth.size, 4)


def pct(xs: list[float], p: float) -> float:
    return round(float(np.percentile(np.array(xs) * 1e3, p)), 3)


def rss_mib(field: str = "VmRSS") -> float:
    """The process's resident memory now (VmHWM: its peak), after handing freed heap
    back (glibc)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def serialized_bytes(index: faiss.Index) -> int:
    """FAISS's serialized size of ``index``, counted as written (no copy kept)."""
    total = 0

    def count(chunk: bytes) -> int:
        nonlocal total
        total += len(chunk)
        return len(chunk)

    faiss.write_index(index, faiss.PyCallbackIOWriter(count))
    return total


def timed(
    ann: AnnIndex, queries: np.ndarray, truth: np.ndarray, exact, allowed=None, passes: int = 1
) -> dict:
    """One query at a time: p50/p99 ms (each query's best of ``passes``, which keeps
    out most of what other processes on the machine cost) and recall@10 against
    ``truth``."""
    took = np.full(len(queries), np.inf)
    found = []
    for _ in range(passes):
        found = []
        for n, q in enumerate(queries):
            t0 = time.perf_counter()
            _, got = ann.search(q[None, :], K, allowed, exact=exact)
            took[n] = min(took[n], time.perf_counter() - t0)
            found.append(got[0])
    return {
        "p50_ms": pct(took, 50),
        "p99_ms": pct(took, 99),
        "recall_at_10": recall(np.array(found), truth),
    }


def sweep(ann: AnnIndex, queries: np.ndarray, truth: np.ndarray, exact) -> list[dict]:
    """Recall and p50 at other nprobe (and, quantized, re-rank factors: 0 is none)."""
    out = []
    factors = (0, 1, 2, 4) if ann.quantized else (0,)
    for nprobe in (64, 128, 256):
        ann.index.nprobe = min(nprobe, ann.index.nlist)
        for factor in factors:
            if ann.quantized:
                ann.params["rerank"] = max(factor, 1)
            got = timed(ann, queries, truth, exact if factor else None)
            out.append({"nprobe": nprobe, "rerank": factor, **got})
    return out


def reloaded(ann: AnnIndex, path: Path) -> float:
    """The RSS growth (MiB) of reading ``ann``'s file into memory, as a server holds a
    published index after its start (no room left to grow, unlike a built one)."""
    faiss.write_index(ann.index, str(path))
    index, ann.index = ann.index, None
    del index
    gc.collect()
    before = rss_mib()
    ann.index = faiss.read_index(str(path))
    growth = rss_mib() - before
    path.unlink()
    return growth


def child(kind: str, data: Path, home: Path) -> dict[str, Any]:
    """Build one kind from the vectors in ``data`` and measure it (its own process)."""
    ids, vecs = np.load(data / "ids.npy"), np.load(data / "vecs.npy")
    queries, truth = np.load(data / "queries.npy"), np.load(data / "truth.npy")
    before = rss_mib()
    t0 = time.perf_counter()
    ann = AnnIndex.build(
        kind,
        vecs.shape[1],
        lambda: ((ids[a : a + BATCH], vecs[a : a + BATCH]) for a in range(0, len(ids), BATCH)),
        len(ids),
    )
    build_s = time.perf_counter() - t0
    growth = rss_mib() - before
    size = serialized_bytes(ann.index)
    loaded_growth = reloaded(ann, data / f"{kind}.index")
    store = read_only_store(home)
    model = store.active_model()
    dim = vecs.shape[1]

    def stored(want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return store.gather_vectors(model, dim, want.tolist())

    exact = stored if ann.quantized else None
    rng = np.random.default_rng(1)
    allowed = np.sort(rng.choice(ids, int(len(ids) * FILTER_SHARE), replace=False))
    keep = np.isin(ids, allowed)
    few = queries[:FILTERED_QUERIES]
    filtered_truth = exact_top(few, ids[keep], vecs[keep], K)
    with store.snapshot():  # a search's reads share one snapshot, as in a home
        timed(ann, queries[:50], truth[:50], exact)  # warm-up
        search = timed(ann, queries, truth, exact, passes=3)
        filtered = timed(ann, few, filtered_truth, exact, allowed, passes=3)
        params = dict(ann.params)
        swept = sweep(ann, queries, truth, exact)
    store.close()
    return {
        "kind": kind,
        "params": params,
        "build_s": round(build_s, 1),
        "serialized_mib": round(size / 2**20, 1),
        "serialized_bytes_per_item": round(size / len(ids), 1),
        "rss_growth_mib": round(growth, 1),
        "loaded_rss_growth_mib": round(loaded_growth, 1),
        "search_k10": search,
        "filtered_fifth_k10": filtered,
        "sweep": swept,
        # this process's own peak (the vectors loaded, the build): the rusage of a
        # child also counts its parent's memory at the fork
        "process_peak_rss_mib": rss_mib("VmHWM"),
    }


def measure_home(home: Path, scratch: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    ids, vecs, model = home_vectors(home)
    read_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    held = np.zeros(len(ids), bool)
    held[rng.choice(len(ids), HELD_OUT, replace=False)] = True
    queries = np.ascontiguousarray(vecs[held])
    t0 = time.perf_counter()
    truth = exact_top(queries, ids[~held], vecs[~held], K)
    truth_s = time.perf_counter() - t0
    data = scratch / home.name
    data.mkdir()
    np.save(data / "ids.npy", ids[~held])
    np.save(data / "vecs.npy", vecs[~held])
    np.save(data / "queries.npy", queries)
    np.save(data / "truth.npy", truth)
    n, dim = int((~held).sum()), vecs.shape[1]
    del ids, vecs
    gc.collect()
    kinds = {}
    for kind in ("ivf", "ivf-sq8"):
        cmd = [sys.executable, "-m", "bench.quantized", "--child", kind, "--data", str(data)]
        got = run_measured([*cmd, "--home", str(home)])
        kinds[kind] = {**json.loads(got["stdout"]), "process_seconds": got["seconds"]}
    shutil.rmtree(data)
    return {
        "home": str(home),
        "model": model[:12],
        "indexed_items": n,
        "dim": dim,
        "held_out_queries": HELD_OUT,
        "nlist": ivf_nlist(n),
        "read_vectors_s": round(read_s, 1),
        "exact_truth_s": round(truth_s, 1),
        "kinds": kinds,
    }


def modelled(largest: dict[str, Any], items: int = 10_000_000) -> dict[str, Any]:
    """Memory at ``items`` from the per-item figures measured on ``largest`` (a model,
    not a measurement): the lists grow with the items, the centroids with 4 sqrt(n)."""
    n, dim = largest["indexed_items"], largest["dim"]
    centroids = ivf_nlist(n) * dim * 4
    centroids_then = ivf_nlist(items) * dim * 4
    out = {"items": items, "from_items": n}
    for kind, got in largest["kinds"].items():
        per_item = (got["serialized_bytes_per_item"] * n - centroids) / n
        per_loaded = (got["loaded_rss_growth_mib"] * 2**20 - centroids) / n
        per_built = (got["rss_growth_mib"] * 2**20 - centroids) / n
        out[kind] = {
            "bytes_per_item": round(per_item, 1),
            "loaded_rss_bytes_per_item": round(per_loaded, 1),
            "serialized_gib": round((per_item * items + centroids_then) / 2**30, 2),
            "loaded_rss_gib": round((per_loaded * items + centroids_then) / 2**30, 2),
            "built_rss_gib": round((per_built * items + centroids_then) / 2**30, 2),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--home", type=Path, action="append", help="a built home (repeatable)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.data, args.home[0])))
        return
    homes = args.home or [Path("/tmp/u100/home")]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-quantized-") as scratch:
        results = [measure_home(h, Path(scratch)) for h in homes]
    largest = max(results, key=lambda r: r["indexed_items"])
    emit(
        {
            "benchmark": "quantized",
            "defaults": {
                "ivf_nprobe": IVF_NPROBE,
                "sq8_nprobe": SQ8_NPROBE,
                "rerank": RERANK_FACTOR,
            },
            "k": K,
            "homes": results,
            "modelled": modelled(largest),
            "seconds": round(time.perf_counter() - t0, 1),
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
