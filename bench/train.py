"""The default model's quality: the seed card's recipe and foodvec's, trained from the
base model in the same run, against the base model, on the held-out phrases and the
English retrieval set. Also the spread over training seeds.

    .venv/bin/python -m bench.train [--seeds 42,1,2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import emit, machine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="42,1,2")
    args = ap.parse_args()

    from indexer.embedder import load_embedder
    from indexer.evaluate import DATA_DIR, evaluate_model
    from indexer.train import RECIPES, TrainConfig, train

    def evaluate(spec: str) -> dict[str, float]:
        emb = load_embedder(spec, encoder="torch")
        return evaluate_model(
            emb.encode,
            DATA_DIR / "train.csv",
            DATA_DIR / "heldout.csv",
            DATA_DIR / "english_food_queries.json",
        )

    out = {"bench": "train", "base": evaluate("base"), "runs": [], "machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        for recipe, hp in RECIPES.items():
            for seed in [int(s) for s in args.seeds.split(",")]:
                path = Path(tmp) / f"{recipe}-{seed}"
                info = train(
                    TrainConfig(
                        output=path, epochs=int(hp["epochs"]), lr=float(hp["lr"]), seed=seed
                    ),
                    progress=False,
                )
                out["runs"].append(
                    {
                        "recipe": recipe,
                        "seed": seed,
                        "epochs": hp["epochs"],
                        "lr": hp["lr"],
                        "train_seconds": info["seconds"],
                        "steps": info["steps"],
                        **evaluate(str(path)),
                    }
                )
    emit(out)


if __name__ == "__main__":
    main()
