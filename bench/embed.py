"""Embedding throughput: sentence-transformers' `encode` with default settings against
foodvec's encoder, on the same unique short Korean phrases, with their cosine
agreement, measured in the same run.

    .venv/bin/python -m bench.embed [--n 5000] [--repeat 3]

Each round runs the baseline, then ours; the figures are the medians of the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import emit, machine
from bench.korean import korean_phrases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--model", default="base")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of baseline + ours")
    args = ap.parse_args()

    from indexer import load_embedder

    texts = korean_phrases(args.n)
    with tempfile.TemporaryDirectory() as cache:
        fast = load_embedder(args.model, encoder="onnx", cache_dir=Path(cache))
        ref = load_embedder(args.model, encoder="torch")
        ref.model.encode(texts[:8])  # load and warm both
        fast.encode(texts[:8])
        st_runs, fast_runs = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            a = ref.model.encode(texts)  # sentence-transformers defaults (batch 32)
            st_runs.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b = fast.encode(texts)
            fast_runs.append(time.perf_counter() - t0)
        st_s, fast_s = statistics.median(st_runs), statistics.median(fast_runs)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    cos = (a * b).sum(axis=1)
    tokens = [len(fast.tokenizer.encode(t).ids) for t in texts[:500]]
    emit(
        {
            "bench": "embed",
            "phrases": len(texts),
            "mean_tokens": round(float(np.mean(tokens)), 1),
            "sentence_transformers_encode": {
                "seconds": round(st_s, 2),
                "phrases_per_s": round(len(texts) / st_s, 1),
                "phrases_per_s_each_round": [round(len(texts) / x, 1) for x in st_runs],
            },
            "foodvec_onnx": {
                "seconds": round(fast_s, 2),
                "phrases_per_s": round(len(texts) / fast_s, 1),
                "phrases_per_s_each_round": [round(len(texts) / x, 1) for x in fast_runs],
                "sessions": len(fast._sessions),
            },
            "speedup": round(st_s / fast_s, 2),
            "cosine_to_reference": {
                "min": round(float(cos.min()), 7),
                "mean": round(float(cos.mean()), 7),
            },
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
