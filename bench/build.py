"""Bulk build throughput and peak memory: `foodvec build` against sentence-transformers'
`encode` on the same texts, measured in the same run.

    .venv/bin/python -m bench.build --rows 20000 [--model base]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench.common import BIN, ROOT, emit, machine, run_measured
from bench.korean import write_korean_csv
from bench.usda import sample_rows, write_csv


def measure(name: str, csv_path: Path, model: str, home: Path) -> dict:
    cmd = [
        str(BIN / "foodvec"),
        "build",
        str(csv_path),
        "--model",
        model,
        "--home",
        str(home),
        "-q",
        "--json",
    ]
    build = run_measured(cmd)
    summary = json.loads(build["stdout"])
    again = run_measured(cmd)  # the same file again: every row unchanged
    base = run_measured([str(BIN / "python"), "-m", "bench.st_encode", str(csv_path), model])
    base_out = json.loads(base["stdout"])
    rows = summary["rows_read"]
    return {
        "corpus": name,
        "rows": rows,
        "foodvec_build": {
            "seconds_in_build": summary["seconds"],
            "process_seconds": build["seconds"],
            "rows_per_s": round(rows / summary["seconds"], 1),
            "peak_rss_mib": build["peak_rss_mib"],
            "embedded": summary["embedded"],
        },
        "foodvec_rebuild_unchanged": {
            "seconds_in_build": json.loads(again["stdout"])["seconds"],
            "rows_per_s": round(rows / max(json.loads(again["stdout"])["seconds"], 1e-9), 1),
        },
        "baseline_st_encode": {
            "seconds": base_out["seconds"],
            "rows_per_s": round(base_out["rows"] / base_out["seconds"], 1),
            "process_peak_rss_mib": base["peak_rss_mib"],
        },
        "build_vs_encode_speed": round(
            (rows / summary["seconds"]) / (base_out["rows"] / base_out["seconds"]), 3
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=20000, help="USDA names to index")
    ap.add_argument("--model", default="base")
    ap.add_argument(
        "--korean",
        type=int,
        default=5000,
        help="unique short Korean phrases (and the same count, half duplicates)",
    )
    ap.add_argument("--skip-sample", action="store_true")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_sample:
            results.append(
                measure(
                    "sample_foods.csv", ROOT / "data" / "sample_foods.csv", args.model, tmp / "h1"
                )
            )
        if args.korean:
            k = write_korean_csv(tmp / "korean.csv", args.korean)
            results.append(measure(f"korean-unique-{args.korean}", k, args.model, tmp / "hk"))
            d = write_korean_csv(tmp / "korean-dups.csv", args.korean, duplicate_share=0.5)
            results.append(
                measure(f"korean-half-duplicates-{args.korean}", d, args.model, tmp / "hd")
            )
        if args.rows:
            path = write_csv(tmp / "usda.csv", sample_rows(args.rows))
            results.append(measure(f"usda-{args.rows}", path, args.model, tmp / "h2"))
    emit({"bench": "build", "model": args.model, "machine": machine(), "results": results})


if __name__ == "__main__":
    main()
