"""Search latency: warm in-process queries (p50/p99 over 200 queries) and a cold
`foodvec search` process, with sentence-transformers' exact `util.semantic_search`
over the same vectors as the baseline, measured in the same run.

    .venv/bin/python -m bench.search --rows 20000 [--home DIR] [--model base]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import BIN, emit, machine, run_measured
from bench.usda import sample_rows, write_csv


def percentile(xs: list[float], p: float) -> float:
    return float(np.percentile(np.array(xs), p))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--home", type=Path, help="reuse an index home (built if empty)")
    ap.add_argument("--model", default="base")
    ap.add_argument("--index", default="auto")
    ap.add_argument("-k", type=int, default=10)
    args = ap.parse_args()

    import torch
    from sentence_transformers import util

    from indexer import FoodIndex
    from search import Searcher

    tmp = tempfile.TemporaryDirectory()
    home = args.home or Path(tmp.name) / "home"
    rows = sample_rows(args.rows)
    queries = [r["text"] for r in sample_rows(args.queries, seed=1)]
    build_s = None
    with FoodIndex(home, model=args.model) as idx:
        if idx.store.count() != len(rows):
            path = write_csv(Path(tmp.name) / "usda.csv", rows)
            from indexer import BuildOptions

            t0 = time.perf_counter()
            idx.build([path], BuildOptions(progress=False), index_kind=args.index)
            build_s = round(time.perf_counter() - t0, 1)
        s = Searcher(idx)
        s.search(queries[:2], k=args.k)  # load the model and index
        lat = []
        for q in queries:
            t0 = time.perf_counter()
            s.search(q, k=args.k)
            lat.append((time.perf_counter() - t0) * 1000)
        # baseline: encode with sentence-transformers, exact semantic_search on the
        # same vectors (held in memory as one tensor)
        ann = idx.sync()
        model = idx.embedder.model
        parts = list(idx.store.vectors_for_items(idx.store.active_model(), ann.dim))
        corpus = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        base_lat = []
        for q in queries:
            t0 = time.perf_counter()
            qv = model.encode([q], convert_to_tensor=True, normalize_embeddings=True)
            util.semantic_search(qv, corpus, top_k=args.k)
            base_lat.append((time.perf_counter() - t0) * 1000)
        stats = idx.stats()
    cold = []
    for q in queries[:5]:
        r = run_measured([str(BIN / "foodvec"), "search", q, "--home", str(home), "--json"])
        cold.append(r["seconds"])
    emit(
        {
            "bench": "search",
            "items": stats["items"],
            "index": stats["index"],
            "build_seconds": build_s,
            "queries": len(queries),
            "k": args.k,
            "foodvec_warm_ms": {
                "p50": round(percentile(lat, 50), 2),
                "p99": round(percentile(lat, 99), 2),
            },
            "baseline_st_semantic_search_ms": {
                "p50": round(percentile(base_lat, 50), 2),
                "p99": round(percentile(base_lat, 99), 2),
            },
            "cold_process_s": {"median": round(statistics.median(cold), 3), "runs": cold},
            "machine": machine(),
        }
    )
    tmp.cleanup()


if __name__ == "__main__":
    main()
