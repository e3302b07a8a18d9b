"""Filters used for the first time: the field index against the database's SQL.

A home of --size items copied from --home (a ready home of USDA foods with the
metadata keys category, type, kcal, protein_g and sodium_mg, built with the ``base``
model), opened twice in one process: once as a one-shot process has it (every filter
read by SQL from the items' JSON) and once warmed as a server warms it (``warm_fields``:
filters answered from the field index). For a set of filters covering every operator
of the filter language, and the legacy key=value filter, each search uses its filter
for the first time (its values change with every query, and the per-generation cache
of filter answers is emptied before each search): p50/p99 of a whole dense search
(k=10, encoding included) through each path, against the dense search without a
filter in the same run, the ratio of the filtered p50 to the unfiltered one, and a
check that both paths find the same ids (the filter's, and the search's top k).

    .venv/bin/python -m bench.filters --home /tmp/u100/home --out bench/results/filters.json
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import emit, machine
from bench.search import pct

# One entry per filter: its name and a maker of its n-th variant (``where``, legacy
# ``filters``), each new to the cache.
Maker = Callable[[int], tuple[dict[str, Any] | None, dict[str, Any] | None]]


def make_filters(categories: list[str], rng: random.Random) -> dict[str, Maker]:
    """Filters over the USDA keys; ``categories``: the distinct categories, most
    common first."""
    common = categories[:40]
    words = sorted({w for c in categories for w in c.replace(",", " ").split() if len(w) > 3})
    rng.shuffle(words)

    def pick(n: int, salt: int) -> str:
        return common[(n * 7 + salt) % len(common)]

    return {
        "eq_category": lambda n: ({"category": pick(n, 0)}, None),
        "in_two_categories": lambda n: (
            {"category": {"$in": [pick(n, 0), pick(n, 1), f"none {n}"]}},
            None,
        ),
        "contains_in_category": lambda n: (
            {"category": {"$contains": words[n % len(words)]}},
            None,
        ),
        "text_range_category": lambda n: (
            {"category": {"$gte": "C", "$lt": f"D{n:04d}"}},
            None,
        ),
        "kcal_range": lambda n: ({"kcal": {"$gte": 100 + n * 1e-6, "$lt": 250}}, None),
        "protein_gt": lambda n: ({"protein_g": {"$gt": 20 + n * 1e-6}}, None),
        "sodium_lte": lambda n: ({"sodium_mg": {"$lte": 140 + n * 1e-6}}, None),
        "ne_category": lambda n: ({"category": {"$ne": pick(n, 2)}}, None),
        "nin_type": lambda n: ({"type": {"$nin": ["branded_food", f"none {n}"]}}, None),
        "exists_kcal": lambda n: ({"kcal": {"$exists": n % 2 == 0}}, None),
        "or_category_protein": lambda n: (
            {"$or": [{"category": pick(n, 3)}, {"protein_g": {"$gt": 30 + n * 1e-6}}]},
            None,
        ),
        "legacy_key_value": lambda n: (None, {"category": pick(n, 4)}),
    }


def copy_home(source: Path, dest: Path, size: int) -> int:
    """``source`` copied to ``dest`` (index included), cut to ``size`` items at random
    (then its index is built again); the number of items."""
    from sqlalchemy import text

    from indexer import FoodIndex

    shutil.copytree(source, dest)
    with FoodIndex(dest, model="base") as idx:
        total = idx.count()
        if size < total:
            with idx._store.engine.begin() as conn:
                ids = conn.execute(text("SELECT id FROM items ORDER BY id")).scalars().all()
                drop = np.random.default_rng(0).choice(total, total - size, replace=False)
                conn.execute(text("DELETE FROM items WHERE id = :i"), [{"i": ids[k]} for k in drop])
            idx.sync(publish=True, force_rebuild=True)
        return idx.count()


def _timed(fn: Callable[..., Any], *args: Any, **kw: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return (time.perf_counter() - t0) * 1000, out


def _row(lat: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}


def _first_uses(sql, warm, filters: dict[str, Maker], queries: list[str], k: int) -> dict:
    """Every query through every filter (new variants each query), on both paths, and
    each query without a filter; the latencies, the ids found and whether they agree."""
    from indexer.filters import filter_node

    got: dict[str, Any] = {"plain": []}
    for name in filters:
        got[name] = {"sql": [], "fields": [], "sql_filter": [], "fields_filter": []}
        got[name].update(same=True, answered=True, matching=[])
    for n, q in enumerate(queries):
        got["plain"].append(_timed(warm.search, q, k=k, mode="dense")[0])
        for name, make in filters.items():
            where, legacy = make(n)
            node = filter_node(legacy, where)
            t, found = got[name], {}
            for path, idx in (("sql", sql), ("fields", warm)):
                idx.derived._filter_cache.clear()  # a first use: nothing kept
                ms, hits = _timed(idx.search, q, k=k, mode="dense", where=where, filters=legacy)
                t[path].append(ms)
                idx.derived._filter_cache.clear()
                ms, ids = _timed(idx.filtered_ids, node)
                t[f"{path}_filter"].append(ms)
                found[path] = (ids.tolist(), [h.id for h in hits[0]])
            t["same"] &= found["sql"] == found["fields"]
            t["answered"] &= warm.derived._fields.evaluate(node) is not None
            t["matching"].append(len(found["sql"][0]))
    return got


def measure(home: Path, queries: list[str], k: int, seed: int) -> dict[str, Any]:
    from indexer import FoodIndex

    with FoodIndex(home, model="base") as sql, FoodIndex(home, model="base") as warm:
        build_ms, _ = _timed(warm.derived.warm_fields)
        fields = warm.derived._fields
        facets = {f["key"]: f for f in sql._store.facets(max_values=10_000)}
        cats = [v for v, _ in facets["category"]["values"]]
        filters = make_filters(cats, random.Random(seed))
        for idx in (sql, warm):
            idx.search(queries[:2], k=k, mode="dense")  # the model and the index loaded
        got = _first_uses(sql, warm, filters, queries, k)
        dense = _row(got["plain"])
        out = {}
        for name, t in ((n, got[n]) for n in filters):
            where, legacy = filters[name](0)
            out[name] = {
                "example": {"where": where} if legacy is None else {"filters": legacy},
                "matching_mean": round(float(np.mean(t["matching"]))),
                "dense_filtered_fields": _row(t["fields"]),
                "dense_filtered_sql": _row(t["sql"]),
                "ratio_fields_to_dense_p50": round(pct(t["fields"], 50) / dense["p50_ms"], 2),
                "ratio_sql_to_dense_p50": round(pct(t["sql"], 50) / dense["p50_ms"], 2),
                "filter_alone_fields": _row(t["fields_filter"]),
                "filter_alone_sql": _row(t["sql_filter"]),
                "answered_by_field_index": t["answered"],
                "same_ids": t["same"],
            }
        return {
            "items": len(fields),
            "field_index": {
                "build_ms": round(build_ms),
                "memory_mib": round(fields.nbytes() / 2**20, 2),
                "keys": fields.keys(),
            },
            "dense_unfiltered": dense,
            "filters": out,
            "worst_ratio_fields_to_dense_p50": max(
                r["ratio_fields_to_dense_p50"] for r in out.values()
            ),
            "all_same_ids": all(r["same_ids"] for r in out.values()),
        }


def sample_queries(home: Path, n: int, seed: int) -> list[str]:
    """Food names of the home's items, as queries."""
    from indexer import FoodIndex

    with FoodIndex(home, model="base") as idx:
        rows = idx._store.page(limit=10**6)
    return [r.text for r in random.Random(seed).sample(rows, n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--home", type=Path, default=Path("/tmp/u100/home"))
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-filters-"))
    try:
        t0 = time.perf_counter()
        count = copy_home(args.home, work / "home", args.size)
        result: dict[str, Any] = {
            "bench": "filters",
            "size": count,
            "k": args.k,
            "queries": args.queries,
            "copy_seconds": round(time.perf_counter() - t0, 1),
            "machine": machine(),
        }
        queries = sample_queries(work / "home", args.queries, args.seed)
        result.update(measure(work / "home", queries, args.k, args.seed))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    emit(result)
    if args.out:
        import json

        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
