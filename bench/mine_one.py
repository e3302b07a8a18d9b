"""One mining run on saved vectors (a .npy file), for bench/mine.py to time in a
child process. Prints the pairs (a, b, score) as .npy and a JSON line."""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def main(method: str, vec_path: str, out_path: str, top_k: int, threshold: float) -> None:
    vecs = np.load(vec_path, mmap_mode=None)
    t0 = time.perf_counter()
    if method == "reference":
        import torch
        from sentence_transformers import util

        ref = util.paraphrase_mining_embeddings(torch.from_numpy(vecs), top_k=top_k)
        kept = [(i, j, s) for s, i, j in ref if s >= threshold]
        capped = len(ref) >= 500_000 and ref[-1][0] >= threshold
        arr = np.array(kept, dtype=np.float64).reshape(-1, 3)
    else:
        from indexer.mining import mine_exact, mine_ivf

        fn = mine_exact if method == "exact" else mine_ivf
        pairs = fn(vecs, top_k=top_k, threshold=threshold)
        arr = np.stack([pairs.a, pairs.b, pairs.score.astype(np.float64)], axis=1)
        capped = False
    seconds = time.perf_counter() - t0
    np.save(out_path, arr)
    print(
        json.dumps(
            {
                "method": method,
                "items": len(vecs),
                "pairs": len(arr),
                "seconds": round(seconds, 2),
                "reference_capped": capped,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
