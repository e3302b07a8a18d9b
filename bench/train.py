"""The default model's quality over training seeds: every figure of ``foodvec
eval-model`` (Korean lookup, health, English, [UNK], mining) for the base model, the
seed card's recipe and foodvec's default recipe, trained from the base model in the
same run; the mean and the worst over seeds for the default recipe.

    .venv/bin/python -m bench.train [--seeds 42,1,2] [--card-seeds 42]
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
    "english_ndcg@10": True,
    "planted_ap": True,
    "unk_rate_hangul_words": False,
    "sample_pairs_above_threshold": False,
    "train_seconds": False,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="42,1,2")
    ap.add_argument("--card-seeds", default="42")
    args = ap.parse_args()

    from indexer.quality import model_report
    from indexer.train import TrainConfig, train

    out = {"bench": "train", "base": model_report("base"), "runs": [], "machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        for recipe, seeds in (("foodvec", args.seeds), ("card", args.card_seeds)):
            for seed in [int(s) for s in seeds.split(",") if s]:
                path = Path(tmp) / f"{recipe}-{seed}"
                info = train(TrainConfig.for_recipe(recipe, output=path, seed=seed), False)
                out["runs"].append(
                    {
                        "recipe": recipe,
                        "seed": seed,
                        "train_seconds": info["seconds"],
                        "steps": info["steps"],
                        **model_report(str(path)),
                    }
                )
    runs = [r for r in out["runs"] if r["recipe"] == "foodvec"]
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
