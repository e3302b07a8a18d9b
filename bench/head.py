"""The health head's training rows: fitted on the labelled phrases alone (the baseline)
against phrases plus the labelled foods of the demo corpus and of the lookup dev half
(what ``foodvec train`` fits), both on one model's vectors, each judged on the held-out
phrases and on the foods of the lookup test half, which neither sees.

    .venv/bin/python -m bench.head [--model .foodvec/models/default]
"""

from __future__ import annotations

import argparse

from bench.common import emit, machine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=".foodvec/models/default", help="a model folder or base")
    args = ap.parse_args()

    from indexer.embedder import load_embedder
    from indexer.evaluate import load_labelled
    from indexer.health import train_head
    from indexer.settings import DATA_DIR
    from indexer.train import head_rows

    encode = load_embedder(args.model).encode
    rows, heldout, foods = head_rows()
    phrases = load_labelled(DATA_DIR / "train.csv")
    out = {"bench": "head", "model": args.model, "heads": []}
    for name, (texts, labels) in (("phrases only", phrases), ("phrases and foods", rows)):
        head = train_head(encode, texts, labels, heldout, foods)
        out["heads"].append(
            {
                "rows": name,
                "train_rows": head.train_rows,
                "heldout_phrases_accuracy": head.heldout_accuracy,
                "heldout_foods_accuracy": head.foods_accuracy,
            }
        )
    out["heldout"] = {"phrases": len(heldout[0]), "foods": len(foods[0])}
    out["machine"] = machine()
    emit(out)


if __name__ == "__main__":
    main()
