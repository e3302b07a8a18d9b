"""Korean food lookup: nDCG@10 by query kind, names found first, for every search mode.

The corpus and graded queries are indexer/data/lookup (written by bench.lookup_data; the rules
are in indexer/data/README.md). Parameters are chosen on the ``dev`` half (``--tune``); the
figures to report are the ``test`` half's.

    python -m bench.lookup                          # base and default models, all modes
    python -m bench.lookup --models base --tune     # grid of fusion weights on dev
    python -m bench.lookup --models default --tune-needs   # needs-ranking weights on dev
    python -m bench.lookup --models default --calibrate    # refit data/calibration.json on dev
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import indexer.ranking as ranking
import indexer.scores as scores
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
            res = idx.searcher().search([q["query"] for q in data["queries"]], k=10, mode=mode)
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
    weights (name, text, noun bigrams, syllables), on the dev half."""
    import indexer.lexical as lexical

    rows = []
    chosen = lexical.WEIGHTS
    try:
        for weights in (
            (1.0, 1.0, 0.25, 0.1),
            (2.0, 1.0, 0.25, 0.1),
            (1.0, 1.0, 0.5, 0.1),
            (1.0, 1.0, 0.25, 0.0),
            (1.0, 1.0, 0.0, 0.1),
        ):
            lexical.WEIGHTS = weights
            for alpha in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
                for cand in (20, 50, 100):
                    got = evaluate(idx.searcher(alpha=alpha, candidates=cand), dev, "hybrid")
                    rows.append({"weights": weights, "alpha": alpha, "candidates": cand, **got})
    finally:
        lexical.WEIGHTS = chosen
    rows.sort(key=lambda r: -r["mean_ndcg10"])
    return rows


def tune_needs(idx: FoodIndex, dev: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Grid over the needs ranking's weights (support, relevance, health), the weight of
    a nutrient link and the keyword leg's extra candidates, on the dev half; ranked by
    the mean nDCG@10 of the queries that name a need or a direction, ties by the
    wrong-direction share."""
    chosen = (ranking.W_SUPPORT, ranking.W_BASE, ranking.W_HEALTH, ranking.LINKED)
    directed = [q for q in dev if q.get("direction")]
    rows = []
    try:
        for w_support, w_base, w_health in (
            (0.55, 0.35, 0.10),
            (0.45, 0.45, 0.10),
            (0.65, 0.25, 0.10),
            (0.5, 0.3, 0.2),
            (0.6, 0.4, 0.0),
            (0.4, 0.4, 0.2),
        ):
            for linked in (0.5, 0.7, 0.9):
                ranking.W_SUPPORT, ranking.W_BASE, ranking.W_HEALTH = w_support, w_base, w_health
                ranking.LINKED = linked
                got = evaluate(idx.searcher(), directed, "hybrid")
                rows.append(
                    {
                        "weights": [w_support, w_base, w_health],
                        "linked": linked,
                        "directed_ndcg10": got["mean_ndcg10"],
                        "need_ndcg10": got["need_ndcg10"],
                        "wrong_direction5": got["wrong_direction5"],
                    }
                )
    finally:
        ranking.W_SUPPORT, ranking.W_BASE, ranking.W_HEALTH, ranking.LINKED = chosen
    rows.sort(key=lambda r: (-r["directed_ndcg10"], r["wrong_direction5"]))
    return rows


def calibrate(idx: FoodIndex, dev: list[dict[str, Any]], k: int = 10) -> dict[str, Any]:
    """Fit each scale's logistic curve on the dev half: every top-k hit of every mode,
    labelled relevant when the query grades it 1 or 2 (and it is not of the opposite
    side)."""
    points: dict[str, tuple[list[float], list[bool]]] = {s: ([], []) for s in scores.SCALES}
    scores.ENABLED = False
    try:
        for mode in MODES:
            results = idx.searcher().search([q["query"] for q in dev], k=k, mode=mode)
            for q, hits in zip(dev, results, strict=True):
                opposite = set(q.get("opposite", ()))
                for h in hits:
                    scale = "judged" if h.why is not None else mode
                    xs, ys = points[scale]
                    xs.append(h.score)
                    ys.append(q["relevant"].get(h.id, 0) > 0 and h.id not in opposite)
    finally:
        scores.ENABLED = True
    curves = {}
    for scale, (xs, ys) in points.items():
        if xs:
            slope, intercept = scores.fit_curve(xs, ys)
            curves[scale] = {
                "slope": round(slope, 4),
                "intercept": round(intercept, 4),
                "points": len(xs),
                "relevant": int(sum(ys)),
            }
    return curves


def precision_above(idx: FoodIndex, qs: list[dict[str, Any]], cut: float = 0.5) -> dict:
    """Per mode: the share of hits scoring at least ``cut`` that are relevant, and how
    many there were: what --min-score means in each mode."""
    out = {}
    for mode in MODES:
        results = idx.searcher().search([q["query"] for q in qs], k=10, mode=mode)
        kept = good = 0
        for q, hits in zip(qs, results, strict=True):
            opposite = set(q.get("opposite", ()))
            for h in hits:
                if h.score >= cut:
                    kept += 1
                    good += q["relevant"].get(h.id, 0) > 0 and h.id not in opposite
        out[mode] = {"hits": kept, "precision": round(good / kept, 4) if kept else None}
    return out


def write_calibration(curves: dict[str, Any], spec: str) -> None:
    data = {
        "about": "Logistic curves from each mode's raw score to the chance that a hit is "
        "relevant; fitted by python -m bench.lookup --calibrate on the dev half of "
        "indexer/data/lookup (indexer/scores.py).",
        "model": spec,
        "curves": curves,
    }
    scores.CALIBRATION_PATH.write_text(
        json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )


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
    ap.add_argument(
        "--tune-needs", action="store_true", help="Grid of the needs ranking's weights on dev."
    )
    ap.add_argument(
        "--calibrate",
        action="store_true",
        help="Fit the score curves on dev and write them to indexer/data/calibration.json.",
    )
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
                if args.tune_needs:
                    report.setdefault("tuning_needs", {})[spec] = tune_needs(idx, halves["dev"])
                if args.calibrate:
                    curves = calibrate(idx, halves["dev"])
                    report.setdefault("calibration", {})[spec] = curves
                    write_calibration(curves, spec)
                    scores.curves.cache_clear()
                report.setdefault("min_score_0.5", {})[spec] = precision_above(idx, halves["test"])
                for mode in args.modes.split(","):
                    for split, qs in halves.items():
                        got = evaluate(idx.searcher(), qs, mode)
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
