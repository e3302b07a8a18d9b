"""Bulk build throughput and peak memory: `foodvec build` against sentence-transformers'
`encode` on the same texts, measured in the same run.

    .venv/bin/python -m bench.build --rows 20000 --korean 5000 [--repeat 3] [--model base]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from bench.common import BIN, ROOT, emit, machine, run_measured
from bench.korean import write_korean_csv
from bench.usda import sample_rows, write_csv


def measure(name: str, csv_path: Path, model: str, home: Path, repeat: int) -> dict:
    """``repeat`` rounds, each a fresh build then the baseline, one after the other, so
    that both see the same machine; the figures are the medians of the rounds."""

    def build_cmd(h: Path) -> list[str]:
        return [
            str(BIN / "foodvec"),
            "build",
            str(csv_path),
            "--model",
            model,
            "--home",
            str(h),
            "-q",
            "--json",
        ]

    builds, bases = [], []
    for r in range(repeat):
        run = run_measured(build_cmd(home / f"round{r}"))
        builds.append({**run, "summary": json.loads(run["stdout"])})
        base = run_measured([str(BIN / "python"), "-m", "bench.st_encode", str(csv_path), model])
        bases.append({**base, "out": json.loads(base["stdout"])})
    again = json.loads(run_measured(build_cmd(home / "round0"))["stdout"])  # nothing changed
    rows = builds[0]["summary"]["rows_read"]
    build_rates = [rows / b["summary"]["seconds"] for b in builds]
    base_rates = [b["out"]["rows"] / b["out"]["seconds"] for b in bases]
    return {
        "corpus": name,
        "rows": rows,
        "rounds": repeat,
        "foodvec_build": {
            "seconds_in_build": statistics.median([b["summary"]["seconds"] for b in builds]),
            "process_seconds": statistics.median([b["seconds"] for b in builds]),
            "rows_per_s": round(statistics.median(build_rates), 1),
            "rows_per_s_each_round": [round(x, 1) for x in build_rates],
            "peak_rss_mib": max(b["peak_rss_mib"] for b in builds),
            "embedded": builds[0]["summary"]["embedded"],
        },
        "foodvec_rebuild_unchanged": {
            "seconds_in_build": again["seconds"],
            "rows_per_s": round(rows / max(again["seconds"], 1e-9), 1),
        },
        "baseline_st_encode": {
            "seconds": statistics.median([b["out"]["seconds"] for b in bases]),
            "rows_per_s": round(statistics.median(base_rates), 1),
            "rows_per_s_each_round": [round(x, 1) for x in base_rates],
            "process_peak_rss_mib": max(b["peak_rss_mib"] for b in bases),
        },
        "build_vs_encode_speed": round(
            statistics.median(build_rates) / statistics.median(base_rates), 3
        ),
        "build_vs_encode_speed_each_round": [
            round(a / b, 3) for a, b in zip(build_rates, base_rates, strict=True)
        ],
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
    ap.add_argument("--repeat", type=int, default=3, help="rounds of build + baseline")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_sample:
            results.append(
                measure(
                    "sample_foods.csv",
                    ROOT / "indexer" / "data" / "sample_foods.csv",
                    args.model,
                    tmp / "h1",
                    args.repeat,
                )
            )
        if args.korean:
            k = write_korean_csv(tmp / "korean.csv", args.korean)
            results.append(
                measure(f"korean-unique-{args.korean}", k, args.model, tmp / "hk", args.repeat)
            )
            d = write_korean_csv(tmp / "korean-dups.csv", args.korean, duplicate_share=0.5)
            results.append(
                measure(
                    f"korean-half-duplicates-{args.korean}", d, args.model, tmp / "hd", args.repeat
                )
            )
        if args.rows:
            path = write_csv(tmp / "usda.csv", sample_rows(args.rows))
            results.append(measure(f"usda-{args.rows}", path, args.model, tmp / "h2", args.repeat))
    emit({"bench": "build", "model": args.model, "machine": machine(), "results": results})


if __name__ == "__main__":
    main()
