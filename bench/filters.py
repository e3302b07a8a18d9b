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

``--http``: the same filters over HTTP, as a server answers them. A ``foodvec serve``
of this checkout (``fields``: the field index built at start) and one of
``--baseline`` (another checkout, run from its own modules: the SQL path of an earlier
commit), one after the other, each on its own copy of --home (which is never changed),
``--rounds`` times in the order ABBA. One client sends its requests one after the
other: per position, a dense search (k=10) without a filter and one with each filter's
next variant, in an order that turns with each position, every request with its own
query. No variant repeats (so the server's cache of filter answers never holds one: a
first use every time), and the first position warms the server up. Per server: p50/p99
without a filter and with each filter, the ratio of each filtered p50 to that
server's unfiltered one, and whether both servers find the same ids for the same
request (the issue's bar: a filtered p50 at most 3x the unfiltered one).

    .venv/bin/python -m bench.filters --http --home /tmp/u100/home \
        --baseline /tmp/foodvec-base --out bench/results/filters-http.json
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, emit, machine
from bench.search import pct

# One entry per filter: its name and a maker of its n-th variant (``where``, legacy
# ``filters``), each new to the cache.
Maker = Callable[[int], tuple[dict[str, Any] | None, dict[str, Any] | None]]


def make_filters(categories: list[str], rng: random.Random, pool: int = 40) -> dict[str, Maker]:
    """Filters over the USDA keys; ``categories``: the distinct categories, most
    common first; ``pool``: how many of them the equality filters cycle through (the
    variants of one filter repeat after ``pool`` queries, sooner where 7 divides it)."""
    common = categories[:pool]
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


# -- over HTTP: a server of this checkout against one of another ----------------------

# ``foodvec`` run from a checkout's modules, which come before the installed ones.
LAUNCHER = (
    "import sys; sys.path.insert(0, sys.argv[1]); sys.argv = ['foodvec', *sys.argv[2:]]; "
    "from search.cli import main; main()"
)
PROBE = (
    "import sys; sys.path.insert(0, sys.argv[1]); import indexer.derived as d; "
    "print(d.__file__, hasattr(d.DerivedIndex, 'warm_fields'))"
)


def http_filters(categories: list[str], rng: random.Random, variants: int) -> dict[str, Maker]:
    """The filters of ``make_filters`` with ``variants`` distinct variants each, none
    equal to another (a server keeps the answers of the last 64 filters, and no
    request can empty that cache): the equality filters cycle through enough
    categories, and ``$exists``, with two values only, is made new by a ``$ne`` on a
    text that no item holds (a number never equals a text, so it matches the same
    items)."""
    pool = max(40, variants)
    while pool % 7 == 0:
        pool += 1
    made = make_filters(categories, rng, pool=pool)
    made["exists_kcal"] = lambda n: ({"kcal": {"$exists": n % 2 == 0, "$ne": f"none {n}"}}, None)
    return made


def _all_new(filters: dict[str, Maker], variants: int) -> None:
    """Every variant of every filter is a different filter to the server's cache."""
    from indexer.filters import filter_node

    keys = [repr(filter_node(m(n)[1], m(n)[0])) for m in filters.values() for n in range(variants)]
    if len(set(keys)) != len(keys):
        raise SystemExit("some filter variants repeat: the server's cache would answer them")


def _read_only(home: Path, sql: str) -> list[tuple]:
    """A query on the home's SQLite file, opened immutable (nothing written)."""
    import sqlite3

    con = sqlite3.connect(f"file:{home / 'foodvec.db'}?immutable=1", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _plan(home: Path, requests: int, seed: int):
    """The requests of one server, the same for every server: per position n, the dense
    search without a filter and each filter's n-th variant, each with its own query (a
    food name of the home, none used twice); the first position warms up, not counted."""
    rows = _read_only(
        home,
        "SELECT json_extract(metadata, '$.category') AS c, count(*) AS n FROM items "
        "WHERE c IS NOT NULL GROUP BY c ORDER BY n DESC, c",
    )
    filters = http_filters([c for c, _ in rows], random.Random(seed), requests + 1)
    _all_new(filters, requests + 1)
    names = ["plain", *filters]
    texts = sorted({t for (t,) in _read_only(home, "SELECT text FROM items")})
    queries = iter(random.Random(seed).sample(texts, (requests + 1) * len(names)))
    plan = []
    for n in range(requests + 1):
        at = []
        for name in names:
            body: dict[str, Any] = {"query": next(queries), "mode": "dense"}
            if name != "plain":
                where, legacy = filters[name](requests if n == 0 else n - 1)
                body.update({"where": where} if legacy is None else {"filters": legacy})
            at.append((name, body))
        # each position in its own order, so no filter always follows the same one
        plan.append(at[n % len(at) :] + at[: n % len(at)])
    return filters, plan


def _serve(code: Path, source: Path, work: Path, k: int, plan, timeout: float) -> dict:
    """A server of ``code`` on a fresh copy of ``source``: the plan's requests from one
    client, one after the other; latencies (ms) and the ids found, per filter."""
    import httpx

    from bench.http import _wait_ready, free_port

    home = work / "home"
    shutil.copytree(source, home)
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    log = open(work / "server.log", "wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(code), "serve", "--home", str(home),
         "--model", "base", "--port", str(port)],
        cwd=code, stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    got: dict[str, Any] = {"lat": {}, "ids": {}, "errors": 0}
    try:
        try:
            _wait_ready(url, proc, timeout)
        except SystemExit:
            raise SystemExit((work / "server.log").read_text()[-3000:]) from None
        got["start_s"] = round(time.perf_counter() - t0, 1)
        with httpx.Client(base_url=url, timeout=120) as client:
            for n, position in enumerate(plan):
                for name, body in position:
                    t1 = time.perf_counter()
                    resp = client.post("/search", json={**body, "k": k})
                    ms = (time.perf_counter() - t1) * 1000
                    ok = resp.status_code == 200
                    got["errors"] += not ok
                    if n:  # position 0 warms up
                        if ok:
                            got["lat"].setdefault(name, []).append(ms)
                        ids = [h["id"] for h in resp.json()["results"]] if ok else None
                        got["ids"].setdefault(name, []).append(ids)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(home, ignore_errors=True)
    return got


def measure_http(args) -> dict[str, Any]:
    """Servers of this checkout (``fields``) and of ``args.baseline``, one after the
    other, ``args.rounds`` times (in the order ABBA..., each on its own copy of the
    home); the latencies of the rounds put together."""
    codes = {"fields": ROOT, "baseline": args.baseline.resolve()}
    filters, plan = _plan(args.home, args.requests, args.seed)
    runs: dict[str, list[dict]] = {name: [] for name in codes}
    order = []
    work = Path(tempfile.mkdtemp(prefix="bench-filters-http-"))
    try:
        for r in range(args.rounds):
            for name in list(codes) if r % 2 == 0 else list(codes)[::-1]:
                order.append(name)
                runs[name].append(_serve(codes[name], args.home, work, args.k, plan, 900))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    servers = {}
    for name, code in codes.items():
        probe = subprocess.run(
            [sys.executable, "-c", PROBE, str(code)], capture_output=True, text=True
        )
        commit = subprocess.run(
            ["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        lat = {f: [ms for run in runs[name] for ms in run["lat"][f]] for f in ["plain", *filters]}
        dense = _row(lat["plain"])
        rows = {}
        for f in filters:
            where, legacy = filters[f](0)
            rows[f] = {
                "example": {"where": where} if legacy is None else {"filters": legacy},
                **_row(lat[f]),
                "ratio_to_dense_p50": round(pct(lat[f], 50) / dense["p50_ms"], 2),
            }
        servers[name] = {
            "code": str(code),
            "commit": commit.stdout.strip(),
            "modules": probe.stdout.strip(),
            "start_to_ready_s": [run["start_s"] for run in runs[name]],
            "errors": sum(run["errors"] for run in runs[name]),
            "dense_unfiltered": dense,
            "dense_p50_per_round": [pct(run["lat"]["plain"], 50) for run in runs[name]],
            "filtered": rows,
            "filtered_p50_range_ms": [
                min(r["p50_ms"] for r in rows.values()),
                max(r["p50_ms"] for r in rows.values()),
            ],
            "worst_ratio_to_dense_p50": max(r["ratio_to_dense_p50"] for r in rows.values()),
        }
    same = {}
    for f in ["plain", *filters]:
        a = [ids for run in runs["fields"] for ids in run["ids"][f]]
        b = [ids for run in runs["baseline"] for ids in run["ids"][f]]
        agree = sum(x == y for x, y in zip(a, b, strict=True) if x is not None)
        same[f] = {
            f"first_{args.check}": a[: args.check] == b[: args.check],
            "all_requests": f"{agree}/{len(a)}",
        }
    worst = servers["fields"]["worst_ratio_to_dense_p50"]
    return {
        "size": _read_only(args.home, "SELECT count(*) FROM items")[0][0],
        "order": order,
        "servers": servers,
        "same_ids_fields_vs_baseline": same,
        "target": {
            "filtered_p50_at_most_x_dense_p50": 3.0,
            "worst_fields": worst,
            "met": worst <= 3.0,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--home", type=Path, default=Path("/tmp/u100/home"))
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--http", action="store_true", help="over HTTP, against --baseline")
    ap.add_argument("--baseline", type=Path, default=Path("/tmp/foodvec-base"),
                    help="--http: another checkout, whose server is measured too")  # fmt: skip
    ap.add_argument("--requests", type=int, default=60, help="--http: per filter and server")
    ap.add_argument("--rounds", type=int, default=2, help="--http: servers started per checkout")
    ap.add_argument("--check", type=int, default=5, help="--http: first requests whose ids agree")
    args = ap.parse_args()
    if args.http:
        result = {
            "bench": "filters-http",
            "k": args.k,
            "mode": "dense",
            "requests_per_filter": args.requests * args.rounds,
            "rounds": args.rounds,
            "machine": machine(),
        }
        result.update(measure_http(args))
        emit(result)
        if args.out:
            import json

            args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        return

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
