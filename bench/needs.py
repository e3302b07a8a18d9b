"""What the needs ranking adds to a search, at scale.

A home of N Korean descriptions (the lookup corpus's foods, each repeated with a
numbered variant so that every text is distinct; vectors are the default model's
vector of the food plus a little noise, taken through ``--vector-column`` so nothing is
embedded N times), then, in the same run, warm single-query searches of the dev half's
need, nutrient and English queries:

- ``hybrid``: the default search (query understanding, the keyword leg for the needs,
  the judgement of every candidate);
- ``hybrid_plain``: the same search with the needs ranking switched off (the hybrid
  search as it was before), the baseline;
- ``dense``: the plain vector search.

Each is timed over every query twice: the first pass reads each candidate's facts for
the first time (``first_pass``), the second finds them cached (``p50``, ``p99``). The
encoder is the default model's; its time is in every mode alike.

    .venv/bin/python -m bench.needs --size 100000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import emit, machine


def pct(xs: list[float], p: float) -> float:
    return round(float(np.percentile(np.array(xs), p)), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--home", type=Path, help="Home whose models/default is the model.")
    ap.add_argument(
        "--keep", type=Path, help="Build the test home here and reuse it when it exists."
    )
    args = ap.parse_args()

    from indexer import BuildOptions, FoodIndex
    from indexer.quality import load_corpus, load_queries

    model_home = args.home or FoodIndex(None).home
    model = str(model_home / "models" / "default")
    corpus = load_corpus()
    queries = [
        q["query"]
        for q in load_queries()
        if q["split"] == "dev" and q["kind"] in ("need", "nutrient", "english")
    ]
    out: dict = {"bench": "needs", "size": args.size, "queries": len(queries)}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        home = args.keep or Path(tmp) / "home"
        with FoodIndex(home, model=model) as idx:
            base = idx.embedder.encode([r["text"] for r in corpus])
            path = Path(tmp) / "rows.jsonl"
            with open(path, "w", encoding="utf-8") as fh:
                for n in range(args.size):
                    r = corpus[n % len(corpus)]
                    v = base[n % len(corpus)] + rng.normal(0, 0.01, base.shape[1])
                    v = v / np.linalg.norm(v)
                    row = {
                        "id": f"x{n}",
                        "text": f"{r['text']} #{n // len(corpus)}",
                        "category": r["category"],
                        "vector": [round(float(x), 6) for x in v],
                    }
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            t0 = time.perf_counter()
            if idx.count() != args.size:
                idx.build([path], BuildOptions(progress=False, vector_column="vector"))
            out["build_seconds"] = round(time.perf_counter() - t0, 1)
            out["index"] = idx.stats()["index"]
            runs = {
                "hybrid": (idx.searcher(), "hybrid"),
                "hybrid_plain": (idx.searcher(needs=False), "hybrid"),
                "dense": (idx.searcher(), "dense"),
            }
            for s, mode in runs.values():  # load the model and the indexes
                s.search(queries[:2], k=10, mode=mode)
            for name, (s, mode) in runs.items():
                passes = []
                for _ in range(2):
                    times = []
                    for q in queries:
                        t0 = time.perf_counter()
                        s.search([q], k=10, mode=mode)
                        times.append((time.perf_counter() - t0) * 1000)
                    passes.append(times)
                out[name] = {
                    "first_pass_p50_ms": pct(passes[0], 50),
                    "p50_ms": pct(passes[1], 50),
                    "p99_ms": pct(passes[1], 99),
                }
            out["needs_added_p50_ms"] = round(
                out["hybrid"]["p50_ms"] - out["hybrid_plain"]["p50_ms"], 3
            )
            out["hybrid_minus_dense_p50_ms"] = round(
                out["hybrid"]["p50_ms"] - out["dense"]["p50_ms"], 3
            )
    out["machine"] = machine()
    emit(out)


if __name__ == "__main__":
    main()
