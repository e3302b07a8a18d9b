"""Korean food lookup: nDCG@10 by query kind, names found first, for every search mode.

The corpus and graded queries are indexer/data/lookup (written by bench.lookup_data; the rules
are in indexer/data/README.md). Parameters are chosen on the ``dev`` half (``--tune``); the
figures to report are the ``test`` half's.

    python -m bench.lookup                          # base and default models, all modes
    python -m bench.lookup --models base --tune     # grid of fusion weights on dev
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from indexer import BuildOptions, FoodIndex
from indexer.quality import LOOKUP, load_queries, lookup_scores
from indexer.retrieval import MODES, Searcher

DATA = LOOKUP


def evaluate(searcher: Searcher, queries: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    """Mean nDCG@10 per kind and overall, and hit@1 over name queries."""
    results = searcher.search([q["query"] for q in queries], k=10, mode=mode)
    return lookup_scores([[h.id for h in hits] for hits in results], queries)


def english_set(folder: Path, model: str, modes: list[str]) -> dict[str, float]:
    """nDCG@10 per mode on indexer/data/english_food_queries.json (general English retrieval)."""
    import csv

    data = json.loads((DATA.parent / "english_food_queries.json").read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "english.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text"])
        w.writerows(data["corpus"].items())
    idx = FoodIndex(folder / "home", model=model)
    try:
        idx.build([path], BuildOptions(progress=False))
        out = {}
        for mode in modes:
            res = Searcher(idx).search([q["query"] for q in data["queries"]], k=10, mode=mode)
            scores = lookup_scores(
                [[h.id for h in hits] for hits in res],
                [{"kind": "english", **q} for q in data["queries"]],
            )
            out[mode] = scores["mean_ndcg10"]
        return out
    finally:
        idx.close()


def build_home(folder: Path, model: str) -> FoodIndex:
    idx = FoodIndex(folder, model=model)
    idx.build([DATA / "corpus.csv"], BuildOptions(progress=False))
    return idx


def tune(idx: FoodIndex, dev: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Grid over the fusion weight, the candidates per leg and the lexical field
    weights (name, text, syllables), on the dev half."""
    import indexer.lexical as lexical

    rows = []
    chosen = lexical.WEIGHTS
    try:
        for weights in (
            (2.0, 1.0, 0.2),
            (1.0, 1.0, 0.2),
            (3.0, 1.0, 0.2),
            (2.0, 1.0, 0.5),
            (2.0, 1.0, 0.0),
        ):
            lexical.WEIGHTS = weights
            for alpha in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
                for cand in (20, 50, 100):
                    got = evaluate(Searcher(idx, alpha=alpha, candidates=cand), dev, "hybrid")
                    rows.append({"weights": weights, "alpha": alpha, "candidates": cand, **got})
    finally:
        lexical.WEIGHTS = chosen
    rows.sort(key=lambda r: -r["mean_ndcg10"])
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--models",
        default="base,default",
        help="Comma-separated model specs: base, default (HOME/models/default), or folders.",
    )
    ap.add_argument("--home", type=Path, help="Home whose models/default is the default model.")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--tune", action="store_true", help="Grid of fusion parameters on dev.")
    args = ap.parse_args(argv)
    queries = load_queries()
    halves = {s: [q for q in queries if q["split"] == s] for s in ("dev", "test")}
    report: dict[str, Any] = {
        "corpus": sum(1 for _ in open(DATA / "corpus.csv", encoding="utf-8")) - 1,
        "queries": {s: len(v) for s, v in halves.items()},
        "results": [],
    }
    for spec in args.models.split(","):
        model = spec
        if spec == "default":
            home = args.home or FoodIndex(None).home
            model = str(home / "models" / "default")
        with tempfile.TemporaryDirectory() as tmp:
            idx = build_home(Path(tmp) / "home", model)
            try:
                if args.tune:
                    report.setdefault("tuning", {})[spec] = tune(idx, halves["dev"])[:10]
                for mode in args.modes.split(","):
                    for split, qs in halves.items():
                        got = evaluate(Searcher(idx), qs, mode)
                        report["results"].append(
                            {"model": spec, "mode": mode, "split": split, **got}
                        )
            finally:
                idx.close()
            report.setdefault("english_food_queries", {})[spec] = english_set(
                Path(tmp) / "english", model, args.modes.split(",")
            )
    print(json.dumps(report, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
