"""The default model's quality over training seeds: every figure of ``foodvec
eval-model`` (Korean lookup, health, English, [UNK], mining) and the accuracy of the
health head on the held-out phrases, for the base model, the
seed card's recipe and foodvec's default recipe, trained from the base model in the
same run; the mean and the worst over seeds for the default recipe.

    .venv/bin/python -m bench.train [--seeds 42,1,2] [--card-seeds 42] [--recipe R] [--keep DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import emit, machine

# For each figure: True when higher is better (the worst seed is the lowest).
HIGHER_IS_BETTER = {
    "lookup_dense_ndcg10": True,
    "lookup_dense_names_hit1": True,
    "lookup_dense_need_ndcg10": True,
    "heldout_1nn_accuracy": True,
    "health_head_accuracy": True,
    "health_head_foods_accuracy": True,
    "english_ndcg@10": True,
    "planted_ap": True,
    "unk_rate_hangul_words": False,
    "sample_pairs_above_threshold": False,
    "sample_largest_cluster": False,
    "sample_cluster_least_below_threshold": False,
    "train_seconds": False,
}


def _base_head() -> dict:
    """The health head fitted the same way on the base model's vectors (the baseline)."""
    from indexer.embedder import load_embedder
    from indexer.health import train_head
    from indexer.train import head_rows

    encode = load_embedder("base", encoder="torch").encode
    rows, heldout, foods = head_rows()
    head = train_head(encode, *rows, heldout, foods)
    return {
        "health_head_accuracy": head.heldout_accuracy,
        "health_head_foods_accuracy": head.foods_accuracy,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="42,1,2")
    ap.add_argument("--card-seeds", default="42")
    ap.add_argument("--recipe", default="foodvec", help="the recipe to measure over seeds")
    ap.add_argument("--keep", type=Path, help="keep each trained model in this folder")
    args = ap.parse_args()

    from indexer.health import load_head
    from indexer.quality import model_report
    from indexer.train import TrainConfig, train

    out = {"bench": "train", "base": model_report("base"), "runs": [], "machine": machine()}
    out["base"].update(_base_head())
    with tempfile.TemporaryDirectory() as tmp:
        for recipe, seeds in ((args.recipe, args.seeds), ("card", args.card_seeds)):
            for seed in [int(s) for s in seeds.split(",") if s]:
                path = (args.keep or Path(tmp)) / f"{recipe}-{seed}"
                info = train(TrainConfig.for_recipe(recipe, output=path, seed=seed), False)
                out["runs"].append(
                    {
                        "recipe": recipe,
                        "seed": seed,
                        "train_seconds": info["seconds"],
                        "steps": info["steps"],
                        "health_head_accuracy": load_head(path).heldout_accuracy,
                        "health_head_foods_accuracy": load_head(path).foods_accuracy,
                        **model_report(str(path)),
                    }
                )
    runs = [r for r in out["runs"] if r["recipe"] == args.recipe]
    if runs:
        out["foodvec_mean"] = {
            k: round(sum(r[k] for r in runs) / len(runs), 4) for k in HIGHER_IS_BETTER
        }
        out["foodvec_worst"] = {
            k: (min if up else max)(r[k] for r in runs) for k, up in HIGHER_IS_BETTER.items()
        }
    emit(out)


if __name__ == "__main__":
    main()
