"""Search latency and recall at several sizes, on USDA food names.

For each size: a home holding that many items (copied from --source-home, whose
database already holds every USDA vector, so nothing is embedded twice), the index
kind that `auto` picks, then in the same run:
- warm in-process single-query search (encode + top-10 + rows), p50/p99 over 200
  queries, in the default hybrid mode and in dense mode, against
  sentence-transformers' encode + exact `util.semantic_search`;
- the index files' size on disk (FAISS and lexical);
- recall@10 of the index against exact search over the same vectors;
- a cold `foodvec search` process's wall time (median of 5).

    .venv/bin/python -m bench.search --source-home /tmp/usda-home --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from bench.common import BIN, emit, machine, run_measured
from bench.usda import sample_rows


def pct(xs: list[float], p: float) -> float:
    return round(float(np.percentile(np.array(xs), p)), 2)


def make_home(source: Path, dest: Path, size: int, kind: str) -> float:
    from sqlalchemy import text

    from indexer import FoodIndex

    dest.mkdir(parents=True)
    # a copy of the database without its index: the new home builds its own
    shutil.copy(source / "foodvec.db", dest / "foodvec.db")
    with FoodIndex(dest) as idx:
        total = idx.count()
        if size < total:
            keep = np.random.default_rng(0).choice(total, size, replace=False)
            with idx._store.engine.begin() as conn:
                ids = conn.execute(text("SELECT id FROM items ORDER BY id")).scalars().all()
                conn.execute(text("CREATE TEMP TABLE keep(id INTEGER PRIMARY KEY)"))
                conn.execute(text("INSERT INTO keep VALUES (:i)"), [{"i": ids[k]} for k in keep])
                conn.execute(text("DELETE FROM items WHERE id NOT IN (SELECT id FROM keep)"))
        t0 = time.perf_counter()
        idx.sync(publish=True, kind=kind)
    return round(time.perf_counter() - t0, 1)


def index_sizes(folder: Path) -> dict[str, float]:
    mib = 1024 * 1024
    return {
        "faiss": round(sum(p.stat().st_size for p in folder.glob("faiss-*.index")) / mib, 1),
        "lexical": round(sum(p.stat().st_size for p in folder.glob("lexical-*.npz")) / mib, 1),
    }


def _warm_ms(s, queries: list[str], k: int) -> dict[str, list[float]]:
    """Warm search latencies of both modes, interleaved so both see the same machine."""
    s.search(queries[:2], k=k)
    lat: dict[str, list[float]] = {"hybrid": [], "dense": []}
    for q in queries:
        for mode, times in lat.items():
            t0 = time.perf_counter()
            s.search(q, k=k, mode=mode)
            times.append((time.perf_counter() - t0) * 1000)
    return lat


def _recall(idx, queries: list[str], k: int) -> tuple[float, np.ndarray]:
    """Recall@k of the index against exact search, and the stored vectors."""
    ann = idx.sync()
    ids, vecs = idx.vectors()
    qv = idx.embedder.encode(queries)
    flat = faiss.IndexFlatIP(ann.dim)
    flat.add(vecs)
    exact_scores, _ = flat.search(qv, k)
    _, approx_ids = ann.search(qv, k)
    # Tie-aware recall: USDA repeats names, so several items can share the k-th score;
    # a result counts when its true score reaches the exact k-th score.
    pos = {int(i): n for n, i in enumerate(ids)}
    true = np.array(
        [
            [float(qv[r] @ vecs[pos[int(i)]]) if i >= 0 else -9.0 for i in row]
            for r, row in enumerate(approx_ids)
        ]
    )
    return float(np.mean(true >= exact_scores[:, -1:] - 1e-5)), vecs


def _baseline_ms(reference, vecs: np.ndarray, queries: list[str], k: int) -> list[float]:
    """sentence-transformers' encode and semantic_search over the same vectors."""
    import torch
    from sentence_transformers import util

    corpus = torch.from_numpy(vecs)
    out = []
    for q in queries:
        t0 = time.perf_counter()
        v = reference.model.encode([q], convert_to_tensor=True, normalize_embeddings=True)
        util.semantic_search(v, corpus, top_k=k)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _one_size(args, size: int, queries: list[str], reference) -> dict:
    from indexer import FoodIndex

    tmp = Path(tempfile.mkdtemp())
    index_s = make_home(args.source_home, tmp / "home", size, args.kind)
    with FoodIndex(tmp / "home") as idx:
        lat = _warm_ms(idx.searcher(), queries, args.k)
        recall, vecs = _recall(idx, queries, args.k)
        base_lat = _baseline_ms(reference, vecs, queries, args.k)
        stats = idx.stats()
    cold = [
        run_measured([str(BIN / "foodvec"), "search", q, "--home", str(tmp / "home"), "--json"])[
            "seconds"
        ]
        for q in queries[:5]
    ]
    sizes = index_sizes(tmp / "home" / "index")
    shutil.rmtree(tmp)
    ms = {mode: {"p50": pct(v, 50), "p99": pct(v, 99)} for mode, v in lat.items()}
    return {
        "items": stats["items"],
        "index": stats["index"]["type"],
        "params": stats["index"]["params"],
        "index_build_seconds": index_s,
        "recall_at_10_vs_exact": round(float(recall), 4),
        "foodvec_hybrid_warm_ms": ms["hybrid"],
        "foodvec_dense_warm_ms": ms["dense"],
        "index_mib": sizes,
        "baseline_st_encode_semantic_search_ms": {
            "p50": pct(base_lat, 50),
            "p99": pct(base_lat, 99),
        },
        "cold_foodvec_search_s": {"median": round(statistics.median(cold), 3), "runs": cold},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source-home", type=Path, required=True)
    ap.add_argument("--sizes", default="10000,100000,390000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--kind", default="auto")
    ap.add_argument("-k", type=int, default=10)
    args = ap.parse_args()

    from indexer import load_embedder

    queries = [r["text"] for r in sample_rows(args.queries, seed=7)]
    reference = load_embedder("base", encoder="torch")
    reference.model.encode(queries[:2])
    results = [_one_size(args, int(size), queries, reference) for size in args.sizes.split(",")]
    emit(
        {
            "bench": "search",
            "queries": len(queries),
            "k": args.k,
            "results": results,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
