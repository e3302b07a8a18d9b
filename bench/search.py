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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source-home", type=Path, required=True)
    ap.add_argument("--sizes", default="10000,100000,390000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--kind", default="auto")
    ap.add_argument("-k", type=int, default=10)
    args = ap.parse_args()

    import torch
    from sentence_transformers import util

    from indexer import FoodIndex, load_embedder
    from search import Searcher

    queries = [r["text"] for r in sample_rows(args.queries, seed=7)]
    reference = load_embedder("base", encoder="torch")
    reference.model.encode(queries[:2])
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        tmp = Path(tempfile.mkdtemp())
        index_s = make_home(args.source_home, tmp / "home", size, args.kind)
        with FoodIndex(tmp / "home") as idx:
            s = Searcher(idx)
            s.search(queries[:2], k=args.k)
            lat: dict[str, list[float]] = {"hybrid": [], "dense": []}
            for q in queries:  # the modes interleaved, so both see the same machine
                for mode, times in lat.items():
                    t0 = time.perf_counter()
                    s.search(q, k=args.k, mode=mode)
                    times.append((time.perf_counter() - t0) * 1000)
            ann = idx.sync()
            ids, vecs = idx.vectors()
            qv = idx.embedder.encode(queries)
            flat = faiss.IndexFlatIP(ann.dim)
            flat.add(vecs)
            exact_scores, _ = flat.search(qv, args.k)
            _, approx_ids = ann.search(qv, args.k)
            # Tie-aware recall: USDA repeats names, so several items can share the k-th
            # score; a result counts when its true score reaches the exact k-th score.
            pos = {int(i): n for n, i in enumerate(ids)}
            true = np.array(
                [
                    [float(qv[r] @ vecs[pos[int(i)]]) if i >= 0 else -9.0 for i in row]
                    for r, row in enumerate(approx_ids)
                ]
            )
            recall = float(np.mean(true >= exact_scores[:, -1:] - 1e-5))
            corpus = torch.from_numpy(vecs)
            base_lat = []
            for q in queries:
                t0 = time.perf_counter()
                v = reference.model.encode([q], convert_to_tensor=True, normalize_embeddings=True)
                util.semantic_search(v, corpus, top_k=args.k)
                base_lat.append((time.perf_counter() - t0) * 1000)
            stats = idx.stats()
        cold = [
            run_measured(
                [str(BIN / "foodvec"), "search", q, "--home", str(tmp / "home"), "--json"]
            )["seconds"]
            for q in queries[:5]
        ]
        results.append(
            {
                "items": stats["items"],
                "index": stats["index"]["type"],
                "params": stats["index"]["params"],
                "index_build_seconds": index_s,
                "recall_at_10_vs_exact": round(float(recall), 4),
                "foodvec_hybrid_warm_ms": {
                    "p50": pct(lat["hybrid"], 50),
                    "p99": pct(lat["hybrid"], 99),
                },
                "foodvec_dense_warm_ms": {
                    "p50": pct(lat["dense"], 50),
                    "p99": pct(lat["dense"], 99),
                },
                "index_mib": index_sizes(tmp / "home" / "index"),
                "baseline_st_encode_semantic_search_ms": {
                    "p50": pct(base_lat, 50),
                    "p99": pct(base_lat, 99),
                },
                "cold_foodvec_search_s": {
                    "median": round(statistics.median(cold), 3),
                    "runs": cold,
                },
            }
        )
        shutil.rmtree(tmp)
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
