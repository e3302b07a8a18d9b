"""Baseline: sentence-transformers ``encode`` with default settings on a CSV's texts.
Prints {"rows", "seconds"} (model loading excluded)."""

from __future__ import annotations

import csv
import json
import sys
import time

from sentence_transformers import SentenceTransformer

from indexer.embedder import base_model_path


def main(path: str, model: str) -> None:
    with open(path, encoding="utf-8", newline="") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)]
    m = SentenceTransformer(str(base_model_path()) if model == "base" else model, device="cpu")
    t0 = time.perf_counter()
    m.encode(texts)
    print(json.dumps({"rows": len(texts), "seconds": round(time.perf_counter() - t0, 3)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "base")
