"""HTTP service: search latency with 4 concurrent clients at several sizes, and upsert
throughput in batches of 100, against the same searches made in process (the baseline:
what HTTP and the server add), measured in the same run.

    .venv/bin/python -m bench.http --source-home /tmp/usda-home --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from bench.common import BIN, emit, machine
from bench.search import make_home, pct
from bench.usda import sample_rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def search_load(url: str, queries: list[str], clients: int, seconds: float):
    """``clients`` threads searching for ``seconds``: (latencies ms, errors, wall s)."""
    lat: list[float] = []
    errors = [0]
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def client(n: int) -> None:
        rng = np.random.default_rng(n)
        with httpx.Client(base_url=url, timeout=30) as c:
            while time.monotonic() < stop:
                q = queries[int(rng.integers(len(queries)))]
                t0 = time.perf_counter()
                r = c.post("/search", json={"query": q, "k": 10})
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    lat.append(ms)
                    errors[0] += r.status_code != 200

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, errors[0], time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source-home", type=Path, required=True)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--batches", type=int, default=30)
    args = ap.parse_args()

    from indexer import FoodIndex
    from search import Searcher

    queries = [r["text"] for r in sample_rows(400, seed=7)]
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        tmp = Path(tempfile.mkdtemp())
        home = tmp / "home"
        make_home(args.source_home, home, size, "auto")
        with FoodIndex(home) as idx:  # baseline: the same searches in process
            s = Searcher(idx)
            s.search(queries[:2])
            local = []
            for q in queries[:200]:
                t0 = time.perf_counter()
                s.search(q, k=10)
                local.append((time.perf_counter() - t0) * 1000)
        port = free_port()
        proc = subprocess.Popen(
            [str(BIN / "foodvec"), "serve", "--home", str(home), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ},
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        lat, errors, wall = search_load(url, queries, args.clients, args.seconds)
        # upserts: batches of 100 new items, one client
        new_rows = sample_rows(args.batches * 100, seed=99)
        up_t0 = time.perf_counter()
        with httpx.Client(base_url=url, timeout=120) as c:
            for b in range(args.batches):
                items = [
                    {
                        "id": f"new-{b}-{i}",
                        "text": r["text"] + f" (batch {b})",
                        "metadata": {"category": r["category"]},
                    }
                    for i, r in enumerate(new_rows[b * 100 : (b + 1) * 100])
                ]
                r = c.post("/items", json={"items": items})
                errors += r.status_code != 200
        up_s = time.perf_counter() - up_t0
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        results.append(
            {
                "items": size,
                "clients": args.clients,
                "http_search_ms": {"p50": pct(lat, 50), "p99": pct(lat, 99)},
                "http_searches_per_s": round(len(lat) / wall, 1),
                "in_process_search_ms": {"p50": pct(local, 50), "p99": pct(local, 99)},
                "upsert_items_per_s_batches_of_100": round(args.batches * 100 / up_s, 1),
                "errors": errors,
            }
        )
        shutil.rmtree(tmp)
    emit({"bench": "http", "results": results, "machine": machine()})


if __name__ == "__main__":
    main()
