"""HTTP service: search latency with 4 concurrent clients at several sizes, and upsert
throughput in batches of 100, against the same searches made in process (the baseline:
what HTTP and the server add), measured in the same run.

    .venv/bin/python -m bench.http --source-home /tmp/usda-home --sizes 10000,100000

``--storm``: searches beside writes on one SQLite server (issue 24): ``--items`` items
made from the sample corpus, the fake embedder of the tests (no model, so the figures
are those of the index's own work: catch-ups, rebuilds, locks), ``--clients`` search
clients and ``--upserts-per-s`` one-item upserts (half new items, half rewrites) for
``--seconds``; the search and upsert latencies and the full rebuilds the server made.
``--code DIR`` runs the server from another checkout (``git worktree add``) to compare.
With ``--source-home`` the server is ``foodvec serve --model MODEL`` on a copy of that
home (a real model: queries and upserts are embedded; the full rebuilds are read from
``/metrics``).

    .venv/bin/python -m bench.http --storm --items 20000 --seconds 40
    .venv/bin/python -m bench.http --storm --source-home /tmp/u100/home --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
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
                try:
                    ok = c.post("/search", json={"query": q, "k": 10}).status_code == 200
                except httpx.HTTPError:  # a timeout (30 s) counts, with its time
                    ok = False
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    lat.append(ms)
                    errors[0] += not ok

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, errors[0], time.perf_counter() - t0


# The server of ``--storm``: builds its home with the fake embedder, counts every full
# build of the FAISS index after that (AnnIndex.build, the count kept in a file), and
# serves.
STORM_SERVER = r"""
import json, sys
from pathlib import Path
import indexer.ann
from indexer import BuildOptions, FoodIndex
from search.service import create_app
from tests.fakes import FakeEmbedder
import uvicorn

home, source, port, out = sys.argv[1:5]
idx = FoodIndex(home, embedder=FakeEmbedder(64))
idx.build([source], BuildOptions(progress=False))
idx.search("warm up", k=1)
count = [0]
real = indexer.ann.AnnIndex.build
Path(out).write_text(json.dumps({"full_rebuilds": 0}))

def counted(*args, **kw):
    count[0] += 1
    Path(out).write_text(json.dumps({"full_rebuilds": count[0]}))
    return real(*args, **kw)

indexer.ann.AnnIndex.build = counted
uvicorn.run(create_app(idx, compact_every=30), host="127.0.0.1", port=int(port),
            log_level="warning")
"""


def _storm_items(tmp: Path, items: int) -> tuple[Path, list[dict], list[str]]:
    """``items`` rows made from the sample corpus, written to a CSV: (its path, the
    sample rows, the search queries: the sample's names)."""
    import csv

    # the sample of this checkout (an older one compared with --code may lack it)
    here = Path(__file__).resolve().parents[1]
    with open(here / "indexer" / "data" / "sample_foods.csv", encoding="utf-8") as fh:
        base = list(csv.DictReader(fh))
    source = tmp / "items.csv"
    with open(source, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "text", "category"])
        w.writeheader()
        for i in range(items):
            r = base[i % len(base)]
            w.writerow(
                {
                    "id": f"s{i}",
                    "text": f"{r['text']} (변형 {i // len(base)})",
                    "category": r.get("category", ""),
                }
            )
    return source, base, [r["text"].split(":")[0] for r in base]


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(proc.stderr.read().decode()[-3000:])
        time.sleep(0.2)
    raise SystemExit("the server did not become ready")


def _upserts(url: str, base: list[dict], args, stop: threading.Event, lat: list, err: list):
    """One-item upserts at ``args.upserts_per_s`` until ``stop``: half new items, half
    rewrites of random items; latencies (ms) and non-200 answers are appended."""
    rng = np.random.default_rng(1)
    period = 1.0 / args.upserts_per_s
    nxt = time.monotonic()
    j = 0
    with httpx.Client(base_url=url, timeout=120) as c:
        while not stop.is_set():
            r = base[j % len(base)]
            if j % 2:
                item = {
                    "id": f"s{int(rng.integers(args.items))}",
                    "text": f"{r['text']} (고침 {j})",
                }
            else:
                item = {"id": f"u{j}", "text": f"{r['text']} (새 {j})"}
            t1 = time.perf_counter()
            resp = c.post("/items", json={"items": [item]})
            lat.append((time.perf_counter() - t1) * 1000)
            err[0] += resp.status_code != 200
            j += 1
            nxt += period
            time.sleep(max(0.0, nxt - time.monotonic()))


def _storm_server(args, root: Path, tmp: Path, port: int, out: Path) -> subprocess.Popen:
    """The server under the storm: a copy of ``--source-home`` served by ``foodvec
    serve`` with ``--model`` (a real model), or a home built with the fake embedder."""
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    if args.source_home:
        home = tmp / "home"
        shutil.copytree(args.source_home, home)
        cmd = [sys.executable, "-m", "search.cli", "serve", "--home", str(home),
               "--model", args.model, "--port", str(port)]  # fmt: skip
    else:
        source, _, _ = _storm_items(tmp, args.items)
        home = tmp / "home"
        cmd = [sys.executable, "-c", STORM_SERVER, str(home), str(source), str(port), str(out)]
    return subprocess.Popen(
        cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )


def storm(args) -> dict:
    root = Path(args.code).resolve() if args.code else Path(__file__).resolve().parents[1]
    tmp = Path(tempfile.mkdtemp(prefix="foodvec-storm-"))
    _, base, queries = _storm_items(tmp, 0 if args.source_home else args.items)
    if args.source_home:  # its item count, read without opening (nor migrating) it
        import sqlite3

        db = f"file:{Path(args.source_home) / 'foodvec.db'}?mode=ro"
        with sqlite3.connect(db, uri=True) as conn:
            args.items = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    port = free_port()
    out = tmp / "server.json"
    t0 = time.perf_counter()
    proc = _storm_server(args, root, tmp, port, out)
    url = f"http://127.0.0.1:{port}"
    up_lat: list[float] = []
    up_err = [0]
    try:
        _wait_ready(url, proc, args.start_timeout)
        start_s = time.perf_counter() - t0
        stop = threading.Event()
        w = threading.Thread(target=_upserts, args=(url, base, args, stop, up_lat, up_err))
        if args.upserts_per_s > 0:  # 0: the same searches with no writes, the baseline
            w.start()
        lat, errors, wall = search_load(url, queries, args.clients, args.seconds)
        stop.set()
        if w.is_alive():
            w.join()
        metrics = httpx.get(url + "/metrics", timeout=120).text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    served = json.loads(out.read_text()) if out.exists() else {}
    counted = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(("foodvec_index_rebuilds_total", "foodvec_index_catchups_total"))
    }
    shutil.rmtree(tmp)
    return {
        "bench": "http-storm",
        "code": str(root),
        "model": args.model if args.source_home else "fake (tests/fakes.py, 64 dimensions)",
        "source_home": str(args.source_home) if args.source_home else None,
        "items": args.items,
        "clients": args.clients,
        "upserts_per_s_asked": args.upserts_per_s,
        "seconds": args.seconds,
        "server_start_s": round(start_s, 1),
        "searches": len(lat),
        "search_ms": {"p50": pct(lat, 50), "p99": pct(lat, 99), "max": round(max(lat), 1)},
        "upserts": len(up_lat),
        "upsert_ms": {"p50": pct(up_lat, 50), "p99": pct(up_lat, 99)} if up_lat else None,
        "errors": errors + up_err[0],
        "full_rebuilds_under_load": served.get(
            "full_rebuilds", sum(v for k, v in counted.items() if "rebuilds" in k)
        ),
        "metrics": counted,
        "machine": machine(),
    }


def _in_process_ms(home: Path, queries: list[str]) -> list[float]:
    """The baseline: the same searches made in process."""
    from indexer import FoodIndex

    with FoodIndex(home) as idx:
        s = idx.searcher()
        s.search(queries[:2])
        local = []
        for q in queries[:200]:
            t0 = time.perf_counter()
            s.search(q, k=10)
            local.append((time.perf_counter() - t0) * 1000)
    return local


def _upsert_batches(url: str, batches: int) -> tuple[float, int]:
    """Upserts of ``batches`` batches of 100 new items from one client: (seconds, errors)."""
    new_rows = sample_rows(batches * 100, seed=99)
    errors = 0
    t0 = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120) as c:
        for b in range(batches):
            items = [
                {
                    "id": f"new-{b}-{i}",
                    "text": r["text"] + f" (batch {b})",
                    "metadata": {"category": r["category"]},
                }
                for i, r in enumerate(new_rows[b * 100 : (b + 1) * 100])
            ]
            errors += c.post("/items", json={"items": items}).status_code != 200
    return time.perf_counter() - t0, errors


def _one_size(args, size: int, queries: list[str]) -> dict:
    tmp = Path(tempfile.mkdtemp())
    home = tmp / "home"
    make_home(args.source_home, home, size, "auto")
    local = _in_process_ms(home, queries)
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
    up_s, up_errors = _upsert_batches(url, args.batches)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    shutil.rmtree(tmp)
    return {
        "items": size,
        "clients": args.clients,
        "http_search_ms": {"p50": pct(lat, 50), "p99": pct(lat, 99)},
        "http_searches_per_s": round(len(lat) / wall, 1),
        "in_process_search_ms": {"p50": pct(local, 50), "p99": pct(local, 99)},
        "upsert_items_per_s_batches_of_100": round(args.batches * 100 / up_s, 1),
        "errors": errors + up_errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source-home", type=Path)
    ap.add_argument("--storm", action="store_true", help="searches beside writes (issue 24)")
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--upserts-per-s", type=float, default=10.0)
    ap.add_argument("--model", default="base", help="--storm --source-home: the model served")
    ap.add_argument("--code", help="run the --storm server from this checkout")
    ap.add_argument("--start-timeout", type=float, default=600.0)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--batches", type=int, default=30)
    args = ap.parse_args()
    if args.storm:
        emit(storm(args))
        return
    if args.source_home is None:
        ap.error("--source-home is needed (or --storm)")
    queries = [r["text"] for r in sample_rows(400, seed=7)]
    results = [_one_size(args, int(size), queries) for size in args.sizes.split(",")]
    emit({"bench": "http", "results": results, "machine": machine()})


if __name__ == "__main__":
    main()
