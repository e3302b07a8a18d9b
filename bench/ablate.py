"""The training recipe's ablation, on the dev half of the lookup benchmark.

Each variant is the recipe named by ``--recipe`` with some settings changed; it is
trained from the base model and judged on held-out foods of the dev half (dense lookup,
names found first, needs, planted near-duplicates of dev foods) and on the held-out
health phrases. The test half is never read here: it is for ``bench.train``.

    .venv/bin/python -m bench.ablate [--recipe foodvec] [--only a,b] [--seed 42]

Prints one JSON object a variant as it finishes, then the whole table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench.common import emit, machine

# name -> settings changed from the recipe. The first row is the recipe itself.
TRIAL = {"pairs": "name,typed,nutrient", "health": "none", "health_weight": 0.0, "epochs": 4}
# The rows of docs/model.md were measured with the foodvec-next recipe of their
# day; "recipe" is whatever foodvec-next holds now.
VARIANTS: dict[str, dict] = {
    "recipe": {},
    # Built up from names and nutrients alone (a ranking loss, no health term, 4 epochs).
    "names+nutrients": TRIAL,
    "+reworded": {**TRIAL, "pairs": "name,typed,nutrient,reword"},
    "+dressed": {**TRIAL, "pairs": "name,typed,nutrient,dressed"},
    "+dressed+reworded with hard negatives": {
        **TRIAL,
        "pairs": "name,typed,nutrient,dressed,reword,reword-hard",
    },
    "+dressed+needs": {**TRIAL, "pairs": "name,typed,nutrient,dressed,need"},
    "+dressed+reworded with hard negatives+needs+health triplet x0.3": {
        **TRIAL,
        "pairs": "name,typed,nutrient,dressed,reword,reword-hard,need",
        "health": "triplet",
        "health_weight": 0.3,
    },
    "+needs": {**TRIAL, "pairs": "name,typed,nutrient,reword,need"},
    "+health triplet x0.3": {
        **TRIAL,
        "pairs": "name,typed,nutrient,reword,need",
        "health": "triplet",
        "health_weight": 0.3,
    },
    "health none": {"health": "none", "health_weight": 0.0},
    "health triplet x1": {"health": "triplet", "health_weight": 1.0},
    "health triplet x0.3": {"health": "triplet", "health_weight": 0.3},
    "health classify x0.3": {"health": "classify", "health_weight": 0.3},
    "no need pairs": {"pairs": "name,typed,english,nutrient,reword,phrase"},
    "no reworded pairs": {"pairs": "name,typed,english,nutrient,need,phrase"},
    "no name pairs": {"pairs": "english,nutrient,need,reword,phrase"},
    "no phrase pairs": {"pairs": "name,typed,english,nutrient,need,reword"},
    "lr 5e-5": {"lr": 5e-5},
    "lr 1.5e-4": {"lr": 1.5e-4},
    "1 epoch": {"epochs": 1},
    "3 epochs": {"epochs": 3},
    "new rows x5": {"new_rows_lr": 5.0},
    "plain batches": {"group_batches": False},
    "english x1": {"english_weight": 1.0},
}

FIGURES = (
    "lookup_dense_ndcg10",
    "lookup_dense_names_hit1",
    "lookup_dense_need_ndcg10",
    "planted_ap",
    "heldout_1nn_accuracy",
    "health_head_accuracy",
    "english_ndcg@10",
    "sample_pairs_above_threshold",
    "sample_largest_cluster",
    "mine_threshold",
    "train_seconds",
)


def run_variant(recipe: str, changes: dict, seed: int, folder: Path) -> dict:
    """Train one variant into ``folder`` and return its dev figures."""
    from indexer.embedder import load_embedder
    from indexer.evaluate import calibrate_threshold
    from indexer.pairs import read_foods
    from indexer.quality import model_report
    from indexer.train import SEARCH_SOURCES, TrainConfig, _write_head, train_search_next

    # The dev half is what a variant is judged on, so no lookup foods are trained on.
    changes = {"lookup_split": "", **changes}
    cfg = TrainConfig.for_recipe(recipe, output=folder, seed=seed, **changes)
    info = train_search_next(cfg, progress=False)
    encode = load_embedder(str(folder), encoder="torch").encode
    texts = [f.text for f in read_foods(SEARCH_SOURCES[0])]
    threshold = calibrate_threshold(encode, texts)
    (folder / "foodvec_model.json").write_text(json.dumps({"mine_threshold": threshold}))
    head = _write_head(cfg, encode)
    report = model_report(str(folder), split="dev")
    report["health_head_accuracy"] = head
    report["train_seconds"] = info["seconds"]
    return {k: report.get(k) for k in FIGURES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--recipe", default="foodvec")
    ap.add_argument("--only", default="", help="comma-separated variant names")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--set", default="", help="JSON of settings for a variant named 'custom'")
    ap.add_argument("--keep", type=Path, help="keep each variant's model in this folder")
    args = ap.parse_args()
    chosen = dict(VARIANTS)
    if args.set:
        chosen = {"custom": json.loads(args.set)}
    elif args.only:
        chosen = {k: VARIANTS[k] for k in args.only.split(",")}
    out = {"bench": "ablate", "recipe": args.recipe, "seed": args.seed, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, changes) in enumerate(chosen.items()):
            row = {"variant": name, "changes": changes}
            folder = (args.keep or Path(tmp)) / f"v{n}-{name.replace(' ', '_')}"
            row.update(run_variant(args.recipe, changes, args.seed, folder))
            print(json.dumps(row, ensure_ascii=False), file=sys.stderr, flush=True)
            out["rows"].append(row)
    out["machine"] = machine()
    emit(out)


if __name__ == "__main__":
    main()
