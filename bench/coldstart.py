"""The first build on a new home, with a model used before (its graph already in the
per-user cache): the whole `foodvec build` process on --n short Korean phrases against
sentence-transformers' whole process (load the model, encode the same texts),
alternating A B A B, median of --pairs pairs.

    .venv/bin/python -m bench.coldstart [--n 3000] [--pairs 5]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
from pathlib import Path

from bench.common import BIN, emit, machine, run_measured
from bench.korean import korean_phrases
from indexer.text import normalize_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--pairs", type=int, default=5)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp())
    phrases = work / "phrases.csv"
    with open(phrases, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text"])
        # distinct after normalisation (ids are derived from the normalised text)
        texts = list(dict.fromkeys(normalize_text(t) for t in korean_phrases(2 * args.n)))
        w.writerows([t] for t in texts[: args.n])
    env = {"FOODVEC_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1"}

    def build(home: str) -> dict:
        cmd = [str(BIN / "foodvec"), "build", str(phrases), "-q", "--model", "base"]
        return run_measured([*cmd, "--home", str(work / home)], env=env)

    first = build("warm-up")  # a home elsewhere uses the model: its graph is exported once
    graphs = sorted((work / "cache" / "onnx").glob("*/encoder.onnx"))
    ours, theirs = [], []
    for n in range(args.pairs):
        ours.append(build(f"new-{n}")["seconds"])
        baseline = [str(BIN / "python"), "-m", "bench.st_encode", str(phrases), "base"]
        st = run_measured(baseline, env=env)
        theirs.append(st["seconds"])
    exported_again = sorted((work / "cache" / "onnx").glob("*/encoder.onnx")) != graphs
    emit(
        {
            "bench": "coldstart",
            "phrases": args.n,
            "first_home_build_with_graph_export_s": first["seconds"],
            "new_home_build_s": {"median": statistics.median(ours), "runs": ours},
            "baseline_st_load_and_encode_s": {
                "median": statistics.median(theirs),
                "runs": theirs,
            },
            "speedup": round(statistics.median(theirs) / statistics.median(ours), 2),
            "graph_exported_again": exported_again,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
